"""The reservation protocol as two PL/pgSQL functions, so that a reservation, a settlement or a
release is one round trip to PostgreSQL and one statement (budgets/services.py says why each is
exact under concurrency).

- `budgets_reserve(reservation jsonb, day_start, month_start, allow_over text[])` finds the
  tenant's enabled budgets that count the call, creates their missing counters, locks the
  counters in key order, checks every limit, and only when all pass writes the reservation, its
  lines, the ledger entries, the counters and the crossed alerts. It returns one row per
  applicable budget (`budgets_hold`), by budget name: the budget, its counter as locked (before
  this hold), the amount, and a verdict: `fits`, `over` (a reviewer let the call past a full require_approval
  budget), `refused` (nothing was written), or a single `missing` row (a counter vanished under
  the call: retry).
- `budgets_finish(tenant, reservation, kind, input, output, cached, estimated, at, note)` settles
  (`settle`), releases (`release`) or expires (`expire`) one reservation: locks it, then its
  counters in key order, writes the counters, the ledger entries, the reservation and, on a
  settlement, the crossed alerts. It returns one row: `outcome` (`done`, `not_found`, or the
  status that makes it a conflict), the reservation as written, its model's id, the new alerts.
- `budgets_uuid7()`: ids for the counters and alerts they create, time-ordered like every id the
  application makes (tenants.ids.new_id).
"""

from django.db import migrations

FORWARD = r"""
CREATE OR REPLACE FUNCTION budgets_uuid7() RETURNS uuid
LANGUAGE sql VOLATILE AS $$
    -- A random (version 4) UUID whose first 48 bits become the Unix time in milliseconds and whose
    -- version nibble becomes 7 (RFC 9562).
    SELECT encode(
        set_bit(set_bit(
            overlay(uuid_send(gen_random_uuid())
                    PLACING substring(int8send((extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
                    FROM 1 FOR 6),
            52, 1), 53, 1),
        'hex')::uuid
$$;

CREATE TYPE budgets_hold AS (
    budget_id uuid,
    name text,
    scope text,
    period text,
    unit text,
    "limit" bigint,
    thresholds smallint[],
    on_exceed text,
    enabled boolean,
    agent_id uuid,
    meter_anonymous boolean,
    notify_emails text[],
    webhook_url text,
    counter_id uuid,
    period_start timestamptz,
    scope_value text,
    settled bigint,
    reserved bigint,
    amount bigint,
    verdict text,
    alerts uuid[]
);

CREATE OR REPLACE FUNCTION budgets_reserve(
    p_reservation jsonb, p_day timestamptz, p_month timestamptz, p_allow_over text[]
) RETURNS SETOF budgets_hold
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    res budgets_reservation := jsonb_populate_record(NULL::budgets_reservation, p_reservation);
    keys_budget uuid[];
    keys_start timestamptz[];
    keys_value text[];
    holds budgets_hold[] := '{}';
    hold budgets_hold;
    r record;
    refused boolean := false;
BEGIN
    -- 1. The budgets that count this call, read now (no cache to go stale), and the counter key
    --    each counts it under: the period start is the caller's (computed in the tenant's zone),
    --    the scope value is the member the call names ("" for the tenant, or for the anonymous
    --    bucket of a meter_anonymous budget); a member the call does not name skips the budget.
    SELECT array_agg(k.budget_id ORDER BY k.budget_id, k.period_start, k.scope_value),
           array_agg(k.period_start ORDER BY k.budget_id, k.period_start, k.scope_value),
           array_agg(k.scope_value ORDER BY k.budget_id, k.period_start, k.scope_value)
      INTO keys_budget, keys_start, keys_value
      FROM (
        SELECT b.id AS budget_id,
               CASE b.period WHEN 'day' THEN p_day WHEN 'month' THEN p_month
                             ELSE '1970-01-01 00:00:00+00'::timestamptz END AS period_start,
               CASE b.scope
                   WHEN 'tenant' THEN ''
                   WHEN 'agent' THEN res.agent_id::text
                   WHEN 'api_key' THEN res.api_key_id::text
                   WHEN 'end_user' THEN CASE WHEN res.end_user_id <> '' THEN res.end_user_id
                                             WHEN b.meter_anonymous THEN '' END
                   WHEN 'session' THEN CASE WHEN res.session_id <> '' THEN res.session_id
                                            WHEN b.meter_anonymous THEN '' END
               END AS scope_value
          FROM budgets_budget b
         WHERE b.tenant_id = res.tenant_id AND b.enabled
           AND (b.agent_id IS NULL OR b.agent_id = res.agent_id)
      ) k
     WHERE k.scope_value IS NOT NULL;

    IF keys_budget IS NOT NULL THEN
        -- 2. Create the counters this period or member does not have yet, in key order, before
        --    locking anything. A counter another call is creating at this moment makes this
        --    insert wait for that call's commit (then do nothing), so step 3 sees it.
        INSERT INTO budgets_budgetcounter (id, tenant_id, budget_id, period_start, scope_value, settled, reserved)
        SELECT budgets_uuid7(), res.tenant_id, k.budget_id, k.period_start, k.scope_value, 0, 0
          FROM unnest(keys_budget, keys_start, keys_value) AS k(budget_id, period_start, scope_value)
         ORDER BY k.budget_id, k.period_start, k.scope_value
            ON CONFLICT (budget_id, period_start, scope_value) DO NOTHING;

        -- 3. Lock every counter in key order (the one lock order of every service) and read it
        --    as locked, with its budget's limit as of now; check each against this call.
        FOR r IN
            SELECT b.id AS budget_id, b.name::text AS name, b.scope::text AS scope, b.period::text AS period,
                   b.unit::text AS unit, b."limit", b.thresholds, b.on_exceed::text AS on_exceed, b.enabled,
                   b.agent_id, b.meter_anonymous, b.notify_emails::text[] AS notify_emails,
                   b.webhook_url::text AS webhook_url,
                   c.id AS counter_id, c.period_start, c.scope_value::text AS scope_value, c.settled, c.reserved,
                   CASE b.unit WHEN 'usd_micros' THEN res.worst_case_micros ELSE res.worst_case_tokens END AS amount
              FROM unnest(keys_budget, keys_start, keys_value) AS k(budget_id, period_start, scope_value)
              JOIN budgets_budgetcounter c
                ON c.budget_id = k.budget_id AND c.period_start = k.period_start AND c.scope_value = k.scope_value
              JOIN budgets_budget b ON b.id = c.budget_id
             ORDER BY c.budget_id, c.period_start, c.scope_value
               FOR NO KEY UPDATE OF c
        LOOP
            hold := (r.budget_id, r.name, r.scope, r.period, r.unit, r."limit", r.thresholds, r.on_exceed,
                     r.enabled, r.agent_id, r.meter_anonymous, r.notify_emails, r.webhook_url, r.counter_id,
                     r.period_start, r.scope_value, r.settled, r.reserved, r.amount, 'fits', NULL);
            IF r.enabled AND r.on_exceed <> 'alert_only' AND r.settled + r.reserved + r.amount > r."limit" THEN
                IF r.on_exceed = 'require_approval'
                   AND ('*' = ANY (p_allow_over) OR r.budget_id::text = ANY (p_allow_over)) THEN
                    hold.verdict := 'over';
                ELSE
                    hold.verdict := 'refused';
                    refused := true;
                END IF;
            END IF;
            holds := holds || hold;
        END LOOP;

        IF coalesce(array_length(holds, 1), 0) < array_length(keys_budget, 1) THEN
            -- A counter was deleted or renamed (an erasure) between steps 2 and 3: nothing was
            -- written; the caller tries again.
            hold := NULL;
            hold.verdict := 'missing';
            RETURN NEXT hold;
            RETURN;
        END IF;
        IF refused THEN
            RETURN QUERY SELECT * FROM unnest(holds) h ORDER BY h.name, h.budget_id;
            RETURN;
        END IF;
    END IF;

    -- 4. Every budget has room: write the reservation, its lines, the ledger and the counters.
    INSERT INTO budgets_reservation SELECT res.*;
    INSERT INTO budgets_reservationline (tenant_id, reservation_id, counter_id, amount)
    SELECT res.tenant_id, res.id, h.counter_id, h.amount FROM unnest(holds) h;
    INSERT INTO budgets_ledgerentry
           (tenant_id, kind, counter_id, reservation_id, reserved_delta, settled_delta, note, created_at)
    SELECT res.tenant_id, 'reserve', h.counter_id, res.id, h.amount, 0, '', res.created_at FROM unnest(holds) h;
    UPDATE budgets_budgetcounter c SET reserved = c.reserved + h.amount
      FROM unnest(holds) h WHERE c.id = h.counter_id;

    -- 5. Each threshold the hold crossed upwards (settled + reserved against the limit), once per
    --    budget, period, member and threshold (the unique constraint).
    RETURN QUERY
    WITH fired AS (
        INSERT INTO budgets_budgetalert
               (id, tenant_id, budget_id, period_start, scope_value, threshold, used, "limit", created_at,
                webhook_attempts, webhook_error)
        SELECT budgets_uuid7(), res.tenant_id, h.budget_id, h.period_start, h.scope_value, t.threshold,
               h.settled + h.reserved + h.amount, h."limit", res.created_at, 0, ''
          FROM unnest(holds) h, unnest(h.thresholds) AS t(threshold)
         WHERE (h.settled + h.reserved)::numeric * 100 < t.threshold::numeric * h."limit"
           AND t.threshold::numeric * h."limit" <= (h.settled + h.reserved + h.amount)::numeric * 100
        ON CONFLICT (budget_id, period_start, scope_value, threshold) DO NOTHING
        RETURNING budget_id, id
    )
    SELECT h.budget_id, h.name, h.scope, h.period, h.unit, h."limit", h.thresholds, h.on_exceed, h.enabled,
           h.agent_id, h.meter_anonymous, h.notify_emails, h.webhook_url, h.counter_id, h.period_start,
           h.scope_value, h.settled, h.reserved, h.amount, h.verdict,
           (SELECT array_agg(f.id) FROM fired f WHERE f.budget_id = h.budget_id)
      FROM unnest(holds) h
     ORDER BY h.name, h.budget_id;
END;
$$;

CREATE OR REPLACE FUNCTION budgets_finish(
    p_tenant uuid, p_reservation uuid, p_kind text, p_input bigint, p_output bigint, p_cached bigint,
    p_estimated boolean, p_at timestamptz, p_note text
) RETURNS TABLE (outcome text, reservation budgets_reservation, model_name text, alerts uuid[])
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    res budgets_reservation;
    was_open boolean;
    in_price bigint;
    cached_price bigint;
    out_price bigint;
    micros bigint := 0;
    tokens bigint := 0;
    entry_note text := '';
    fired uuid[];
BEGIN
    -- 1. Lock the reservation (the first lock of every service that ends one).
    SELECT * INTO res FROM budgets_reservation
     WHERE id = p_reservation AND tenant_id = p_tenant FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'not_found'::text, NULL::budgets_reservation, NULL::text, NULL::uuid[];
        RETURN;
    END IF;
    was_open := res.status = 'open';
    IF res.status IN ('settled', 'released') OR (p_kind <> 'settle' AND NOT was_open) THEN
        RETURN QUERY SELECT res.status::text, res, NULL::text, NULL::uuid[];
        RETURN;
    END IF;

    IF p_kind = 'settle' THEN
        -- The call's cost at the prices it was reserved at (the model's current ones for a
        -- reservation made before prices were recorded on it), rounded up: catalog's
        -- LanguageModel.cost_micros.
        IF res.input_price IS NULL OR res.output_price IS NULL THEN
            SELECT m.input_price, m.cached_input_price, m.output_price INTO in_price, cached_price, out_price
              FROM catalog_languagemodel m WHERE m.id = res.model_id;
            IF in_price IS NULL OR out_price IS NULL THEN
                RAISE EXCEPTION 'model % has no prices', res.model_id;
            END IF;
        ELSE
            in_price := res.input_price;
            cached_price := res.cached_input_price;
            out_price := res.output_price;
        END IF;
        micros := ceil((greatest(p_input - p_cached, 0)::numeric * in_price
                        + p_cached::numeric * coalesce(cached_price, in_price)
                        + p_output::numeric * out_price) / 1000000)::bigint;
        tokens := p_input + p_output;
        entry_note := CASE WHEN p_note <> '' THEN p_note WHEN was_open THEN '' ELSE 'settled after expiry' END;
    END IF;

    -- 2. Lock its counters in key order, release the hold (unless expiry released it already)
    --    and add the spend, with one ledger entry per counter and, when spend grew a counter,
    --    the thresholds it crossed.
    WITH lines AS (
        SELECT c.id AS counter_id, c.budget_id, c.period_start, c.scope_value, c.settled, c.reserved,
               b.unit, b."limit", b.thresholds,
               CASE WHEN was_open THEN l.amount ELSE 0 END AS released,
               CASE WHEN p_kind <> 'settle' THEN 0 WHEN b.unit = 'usd_micros' THEN micros ELSE tokens END AS spent
          FROM budgets_reservationline l
          JOIN budgets_budgetcounter c ON c.id = l.counter_id
          JOIN budgets_budget b ON b.id = c.budget_id
         WHERE l.reservation_id = res.id
         ORDER BY c.budget_id, c.period_start, c.scope_value
           FOR NO KEY UPDATE OF c
    ), counted AS (
        UPDATE budgets_budgetcounter c SET reserved = c.reserved - x.released, settled = c.settled + x.spent
          FROM lines x WHERE c.id = x.counter_id
        RETURNING c.id
    ), entries AS (
        INSERT INTO budgets_ledgerentry
               (tenant_id, kind, counter_id, reservation_id, reserved_delta, settled_delta, note, created_at)
        SELECT res.tenant_id, p_kind, x.counter_id, res.id, -x.released, x.spent, entry_note, p_at FROM lines x
        RETURNING id
    ), crossed AS (
        INSERT INTO budgets_budgetalert
               (id, tenant_id, budget_id, period_start, scope_value, threshold, used, "limit", created_at,
                webhook_attempts, webhook_error)
        SELECT budgets_uuid7(), res.tenant_id, x.budget_id, x.period_start, x.scope_value, t.threshold,
               x.settled + x.reserved - x.released + x.spent, x."limit", p_at, 0, ''
          FROM lines x, unnest(x.thresholds) AS t(threshold)
         WHERE x.spent > x.released
           AND (x.settled + x.reserved)::numeric * 100 < t.threshold::numeric * x."limit"
           AND t.threshold::numeric * x."limit" <= (x.settled + x.reserved - x.released + x.spent)::numeric * 100
        ON CONFLICT (budget_id, period_start, scope_value, threshold) DO NOTHING
        RETURNING id
    )
    -- (Every data-modifying CTE runs to completion whether or not it is read.)
    SELECT array_agg(crossed.id) INTO fired FROM crossed;

    -- 3. The reservation's new state.
    IF p_kind = 'settle' THEN
        UPDATE budgets_reservation
           SET status = 'settled', actual_input_tokens = p_input, actual_output_tokens = p_output,
               actual_micros = micros, usage_estimated = p_estimated, finished_at = p_at
         WHERE id = res.id RETURNING * INTO res;
    ELSE
        UPDATE budgets_reservation
           SET status = CASE p_kind WHEN 'release' THEN 'released' ELSE 'expired' END, finished_at = p_at
         WHERE id = res.id RETURNING * INTO res;
    END IF;
    RETURN QUERY SELECT 'done'::text, res, (SELECT m.model_id::text FROM catalog_languagemodel m WHERE m.id = res.model_id),
                        array_remove(fired, NULL);
END;
$$;
"""

BACKWARD = r"""
DROP FUNCTION IF EXISTS budgets_finish(uuid, uuid, text, bigint, bigint, bigint, boolean, timestamptz, text);
DROP FUNCTION IF EXISTS budgets_reserve(jsonb, timestamptz, timestamptz, text[]);
DROP TYPE IF EXISTS budgets_hold;
DROP FUNCTION IF EXISTS budgets_uuid7();
"""


class Migration(migrations.Migration):
    dependencies = [("budgets", "0007_meter_anonymous"), ("catalog", "0001_initial")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
