-- Usage metering, plans and billing records.
--
-- `jobs.tasks`: the tasks (action steps run) charged to a job so far; NULL until the job is
-- first metered (which also counts it as a job). `tasks_reused`: the action steps a rerun took
-- over from the job it reruns, which it did not run and is not charged for.
ALTER TABLE jobs ADD COLUMN tasks BIGINT;
ALTER TABLE jobs ADD COLUMN tasks_reused BIGINT NOT NULL DEFAULT 0;
-- Jobs held over a workspace's task limit (`status = 'held'`): released by workspace.
CREATE INDEX jobs_held ON jobs (workspace_id) WHERE status = 'held';

-- What each job write adds to a workspace's month, in the write's own transaction: appended,
-- never updated, so that jobs do not queue on one counter row. The leader folds them into
-- `usage_months` and deletes them in one transaction.
CREATE TABLE usage_entries (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    workspace_id TEXT NOT NULL,
    period       TEXT NOT NULL,
    tasks        BIGINT NOT NULL,
    jobs         BIGINT NOT NULL
);

-- A workspace's use in a calendar month (UTC, `YYYY-MM`): tasks and jobs summed; the others
-- the highest seen in the month.
CREATE TABLE usage_months (
    workspace_id   TEXT NOT NULL,
    period         TEXT NOT NULL,
    tasks          BIGINT NOT NULL DEFAULT 0,
    jobs           BIGINT NOT NULL DEFAULT 0,
    history_bytes  BIGINT NOT NULL DEFAULT 0,
    active_recipes BIGINT NOT NULL DEFAULT 0,
    connections    BIGINT NOT NULL DEFAULT 0,
    members        BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (workspace_id, period)
);

-- The plan of a workspace (absent: the default plan), set by an operator or by billing.
CREATE TABLE workspace_plans (
    workspace_id TEXT PRIMARY KEY,
    plan         TEXT NOT NULL,
    set_by       TEXT NOT NULL,
    set_at       TIMESTAMPTZ NOT NULL
);

-- Workspaces over their monthly task limit: their new jobs are held until released.
CREATE TABLE quota_holds (
    workspace_id TEXT PRIMARY KEY,
    period       TEXT NOT NULL,
    since        TIMESTAMPTZ NOT NULL
);

-- Warnings of a limit neared (80) or reached (100) in a month, each once; `mailed_at` is set
-- when the owners were mailed.
CREATE TABLE usage_notices (
    workspace_id TEXT NOT NULL,
    period       TEXT NOT NULL,
    measure      TEXT NOT NULL,
    level        BIGINT NOT NULL,
    used         BIGINT NOT NULL,
    quota        BIGINT NOT NULL,
    noted_at     TIMESTAMPTZ NOT NULL,
    mailed_at    TIMESTAMPTZ,
    PRIMARY KEY (workspace_id, period, measure, level)
);

-- A workspace's subscription at the billing provider: ids, plan, status and period only.
CREATE TABLE billing_subscriptions (
    workspace_id         TEXT PRIMARY KEY,
    subscription_id      TEXT NOT NULL,
    customer_id          TEXT,
    price_id             TEXT,
    plan                 TEXT,
    status               TEXT NOT NULL,
    period_start         TIMESTAMPTZ,
    period_end           TIMESTAMPTZ,
    cancel_at_period_end BOOLEAN NOT NULL DEFAULT FALSE,
    event_at             TIMESTAMPTZ NOT NULL,
    updated_at           TIMESTAMPTZ NOT NULL
);

-- Invoices and payments as the provider reports them: never card or bank details.
CREATE TABLE billing_invoices (
    id                 TEXT PRIMARY KEY,
    workspace_id       TEXT NOT NULL,
    subscription_id    TEXT,
    number             TEXT,
    status             TEXT NOT NULL,
    currency           TEXT NOT NULL,
    amount_due         BIGINT NOT NULL,
    amount_paid        BIGINT NOT NULL,
    created_at         TIMESTAMPTZ NOT NULL,
    due_at             TIMESTAMPTZ,
    paid_at            TIMESTAMPTZ,
    period_start       TIMESTAMPTZ,
    period_end         TIMESTAMPTZ,
    hosted_invoice_url TEXT,
    event_at           TIMESTAMPTZ NOT NULL
);
CREATE INDEX billing_invoices_of ON billing_invoices (workspace_id, created_at);

CREATE TABLE billing_payments (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL,
    invoice_id   TEXT,
    status       TEXT NOT NULL,
    currency     TEXT NOT NULL,
    amount       BIGINT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    event_at     TIMESTAMPTZ NOT NULL
);
CREATE INDEX billing_payments_of ON billing_payments (workspace_id, created_at);

-- The provider's events taken, by id: a redelivered event changes nothing.
CREATE TABLE billing_events (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    received_at TIMESTAMPTZ NOT NULL
);
