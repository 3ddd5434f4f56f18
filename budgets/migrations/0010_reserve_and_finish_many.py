"""`budgets_reserve_many` and `budgets_finish_many`: several reservations of one tenant admitted,
or several settled, in one transaction, so that the calls share one commit (and its wait for the
disk) instead of queueing, one durable commit after another, on the counter row they all lock
(budgets.combine says when the first is used; the gateway's recorder settles with the second).

Each item is admitted exactly as `budgets_reserve` alone would admit it, in the order given, each
seeing the counters as the items before it left them (the same statements run, later in the same
transaction). The lock order stays the one of every service: the function first inserts the
counters any item lacks, in key order, then locks every counter any item counts under, in key
order, and only then runs `budgets_reserve` for each item, whose own inserts find the counters and
whose own locks are already held. A budget enabled between that first step and an item's own
reading of the budgets adds a counter taken after the others (out of order): a deadlock is then
possible, PostgreSQL detects it and fails the whole call, and the caller admits the items one by
one (nothing of the failed call was written).

Returns one row per hold, `(idx, hold)`, idx being the item's place in `p_items` (from 0); an
item no budget counts gets one row whose hold is NULL.

`budgets_finish_many(tenant, items)` settles, releases or expires each item as `budgets_finish`
would alone, in order, after locking every reservation of the items in id order and then every
counter they hold in key order: the order of every service that ends a reservation (first the
reservation, then counters by key), extended to several. One row per item: `(idx, outcome,
reservation, model_name, alerts)` as `budgets_finish` returns them.
"""

from django.db import migrations

FORWARD = r"""
CREATE OR REPLACE FUNCTION budgets_reserve_many(p_items jsonb)
RETURNS TABLE (idx integer, hold budgets_hold)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    keys_budget uuid[];
    keys_start timestamptz[];
    keys_value text[];
    item jsonb;
    i integer := 0;
    found_any boolean;
BEGIN
    -- 1. Every counter key of every item (budgets_reserve's own step 1), the missing counters
    --    inserted in key order before anything is locked.
    WITH items AS (
        SELECT jsonb_populate_record(NULL::budgets_reservation, e -> 'reservation') AS res,
               (e ->> 'day')::timestamptz AS day, (e ->> 'month')::timestamptz AS month
          FROM jsonb_array_elements(p_items) AS e
    ), keys AS (
        SELECT DISTINCT b.id AS budget_id,
               CASE b.period WHEN 'day' THEN i.day WHEN 'month' THEN i.month
                             ELSE '1970-01-01 00:00:00+00'::timestamptz END AS period_start,
               CASE b.scope
                   WHEN 'tenant' THEN ''
                   WHEN 'agent' THEN (i.res).agent_id::text
                   WHEN 'api_key' THEN (i.res).api_key_id::text
                   WHEN 'end_user' THEN CASE WHEN (i.res).end_user_id <> '' THEN (i.res).end_user_id
                                             WHEN b.meter_anonymous THEN '' END
                   WHEN 'session' THEN CASE WHEN (i.res).session_id <> '' THEN (i.res).session_id
                                            WHEN b.meter_anonymous THEN '' END
               END AS scope_value
          FROM items i
          JOIN budgets_budget b
            ON b.tenant_id = (i.res).tenant_id AND b.enabled
           AND (b.agent_id IS NULL OR b.agent_id = (i.res).agent_id)
    ), applicable AS (
        SELECT * FROM keys WHERE scope_value IS NOT NULL
    ), created AS (
        INSERT INTO budgets_budgetcounter (id, tenant_id, budget_id, period_start, scope_value, settled, reserved)
        SELECT budgets_uuid7(), b.tenant_id, a.budget_id, a.period_start, a.scope_value, 0, 0
          FROM applicable a JOIN budgets_budget b ON b.id = a.budget_id
         ORDER BY a.budget_id, a.period_start, a.scope_value
            ON CONFLICT (budget_id, period_start, scope_value) DO NOTHING
    )
    SELECT array_agg(a.budget_id), array_agg(a.period_start), array_agg(a.scope_value)
      INTO keys_budget, keys_start, keys_value
      FROM applicable a;

    -- 2. Every one of those counters locked, in key order.
    IF keys_budget IS NOT NULL THEN
        PERFORM 1
           FROM unnest(keys_budget, keys_start, keys_value) AS k(budget_id, period_start, scope_value)
           JOIN budgets_budgetcounter c
             ON c.budget_id = k.budget_id AND c.period_start = k.period_start AND c.scope_value = k.scope_value
          ORDER BY c.budget_id, c.period_start, c.scope_value
            FOR NO KEY UPDATE OF c;
    END IF;

    -- 3. Each item in order, as budgets_reserve admits it alone.
    FOR item IN SELECT e FROM jsonb_array_elements(p_items) AS e LOOP
        found_any := false;
        FOR hold IN
            SELECT h.* FROM budgets_reserve(
                item -> 'reservation', (item ->> 'day')::timestamptz, (item ->> 'month')::timestamptz,
                ARRAY(SELECT jsonb_array_elements_text(coalesce(item -> 'allow_over', '[]'::jsonb)))
            ) AS h
        LOOP
            found_any := true;
            idx := i;
            RETURN NEXT;
        END LOOP;
        IF NOT found_any THEN
            idx := i;
            hold := NULL;
            RETURN NEXT;
        END IF;
        i := i + 1;
    END LOOP;
END;
$$;
"""

FINISH_MANY = r"""
CREATE OR REPLACE FUNCTION budgets_finish_many(p_tenant uuid, p_items jsonb)
RETURNS TABLE (idx integer, outcome text, reservation budgets_reservation, model_name text, alerts uuid[])
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    ids uuid[];
    item jsonb;
    i integer := 0;
BEGIN
    SELECT array_agg((e ->> 'reservation')::uuid) INTO ids FROM jsonb_array_elements(p_items) AS e;
    -- 1. The reservations, in id order; 2. the counters they hold, in key order.
    PERFORM 1 FROM budgets_reservation r
      WHERE r.id = ANY (ids) AND r.tenant_id = p_tenant
      ORDER BY r.id
        FOR NO KEY UPDATE;
    PERFORM 1 FROM budgets_budgetcounter c
      WHERE c.id IN (SELECT l.counter_id FROM budgets_reservationline l WHERE l.reservation_id = ANY (ids))
      ORDER BY c.budget_id, c.period_start, c.scope_value
        FOR NO KEY UPDATE;
    -- 3. Each item in order, as budgets_finish ends it alone (its locks are held already).
    FOR item IN SELECT e FROM jsonb_array_elements(p_items) AS e LOOP
        RETURN QUERY
        SELECT i, f.outcome, f.reservation, f.model_name, f.alerts
          FROM budgets_finish(
              p_tenant, (item ->> 'reservation')::uuid, item ->> 'kind', (item ->> 'input')::bigint,
              (item ->> 'output')::bigint, (item ->> 'cached')::bigint, (item ->> 'estimated')::boolean,
              (item ->> 'at')::timestamptz, item ->> 'note'
          ) AS f;
        i := i + 1;
    END LOOP;
END;
$$;
"""

BACKWARD = """
DROP FUNCTION IF EXISTS budgets_reserve_many(jsonb);
DROP FUNCTION IF EXISTS budgets_finish_many(uuid, jsonb);
"""


class Migration(migrations.Migration):
    dependencies = [("budgets", "0009_fewer_statements_inside")]

    operations = [migrations.RunSQL(FORWARD + FINISH_MANY, BACKWARD)]
