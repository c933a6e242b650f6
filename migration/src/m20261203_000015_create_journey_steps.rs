//! Journey runs, kept for the funnel: `journey_steps` holds one row per stage each run
//! of a customer through a journey reached in order (see `api/src/insights/funnel.rs`
//! for what a run is), so a quarter's funnel reads its runs' steps instead of
//! re-walking every touchpoint of the quarter.
//!
//! The same discipline as the insight rollups (migration 13): the steps are a cache
//! that is never wrong. Triggers, not the application, record every change in the
//! writer's own transaction: a touchpoint inserted, deleted, or moved (another
//! customer, journey, stage, time or channel) marks its `(journey, customer)` in
//! `journey_steps_dirty`; a stage added, removed or moved marks its whole journey
//! (`customer_id` NULL), because ordinals shift. The refresher recomputes marked
//! customers and journeys from the touchpoints and deletes exactly the marks it saw;
//! the funnel reads marked ones from the touchpoints and the rest from the steps.
//!
//! Steps cascade with their customer and journey (a deleted customer leaves no steps
//! behind even before the refresher runs). Written as SQL per backend, like
//! migration 13: composite keys, `INCLUDE` and triggers are beyond the schema builder.

use crate::dsl::{drop_triggers, execute_all};
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DatabaseBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Touchpoint columns that decide runs: a change to one of them re-walks the customer.
const TOUCHPOINT_COLUMNS: &[&str] = &["customer_id", "journey_id", "stage_id", "occurred_at", "channel"];

fn tables(backend: DatabaseBackend) -> Vec<String> {
    let pg = backend == DatabaseBackend::Postgres;
    let (uuid, ts, id) = if pg {
        ("UUID", "TIMESTAMPTZ", "id BIGSERIAL PRIMARY KEY")
    } else {
        // The type names sea-query gives these columns on SQLite (text affinity), so
        // values copied from the touchpoints compare as they do there.
        ("uuid_text", "timestamp_with_timezone_text", "id INTEGER PRIMARY KEY AUTOINCREMENT")
    };
    let window = if pg {
        // Index-only: every column the funnel reads of a run's steps.
        "CREATE INDEX ix_journey_steps_window ON journey_steps (journey_id, entered_at) \
         INCLUDE (ordinal, reached_at, seconds, entry_channel, customer_id)"
    } else {
        "CREATE INDEX ix_journey_steps_window ON journey_steps \
         (journey_id, entered_at, ordinal, reached_at, seconds, entry_channel, customer_id)"
    };
    vec![
        // `run_id` is the touchpoint that began the run; `seconds` is the time from the
        // previous stage (NULL at the first).
        format!(
            "CREATE TABLE journey_steps (customer_id {uuid} NOT NULL, run_id {uuid} NOT NULL, \
             journey_id {uuid} NOT NULL, entered_at {ts} NOT NULL, entry_channel VARCHAR(24) NOT NULL, \
             ordinal INTEGER NOT NULL, reached_at {ts} NOT NULL, seconds DOUBLE PRECISION NULL, \
             PRIMARY KEY (customer_id, run_id, ordinal), \
             FOREIGN KEY (customer_id) REFERENCES customers (id) ON DELETE CASCADE, \
             FOREIGN KEY (journey_id) REFERENCES journeys (id) ON DELETE CASCADE)"
        ),
        window.to_owned(),
        "CREATE INDEX ix_journey_steps_journey_id ON journey_steps (journey_id)".to_owned(),
        format!("CREATE TABLE journey_steps_dirty ({id}, journey_id {uuid} NOT NULL, customer_id {uuid} NULL)"),
        "CREATE INDEX ix_journey_steps_dirty_journey ON journey_steps_dirty (journey_id, customer_id)".to_owned(),
        "CREATE INDEX ix_journey_steps_dirty_customer ON journey_steps_dirty (customer_id)".to_owned(),
    ]
}

fn postgres_triggers() -> Vec<String> {
    let mut sql = vec![
        "CREATE FUNCTION journey_steps_mark_touchpoints() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN \
           IF TG_OP IN ('INSERT', 'UPDATE') THEN \
             INSERT INTO journey_steps_dirty (journey_id, customer_id) \
             SELECT DISTINCT journey_id, customer_id FROM new_rows; \
           END IF; \
           IF TG_OP IN ('UPDATE', 'DELETE') THEN \
             INSERT INTO journey_steps_dirty (journey_id, customer_id) \
             SELECT DISTINCT journey_id, customer_id FROM old_rows; \
           END IF; \
           RETURN NULL; \
         END $$"
            .to_owned(),
        "CREATE FUNCTION journey_steps_mark_stages() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN \
           IF TG_OP IN ('INSERT', 'UPDATE') THEN \
             INSERT INTO journey_steps_dirty (journey_id, customer_id) \
             SELECT DISTINCT journey_id, CAST(NULL AS UUID) FROM new_rows; \
           END IF; \
           IF TG_OP IN ('UPDATE', 'DELETE') THEN \
             INSERT INTO journey_steps_dirty (journey_id, customer_id) \
             SELECT DISTINCT journey_id, CAST(NULL AS UUID) FROM old_rows; \
           END IF; \
           RETURN NULL; \
         END $$"
            .to_owned(),
    ];
    for (table, function) in
        [("touchpoints", "journey_steps_mark_touchpoints"), ("journey_stages", "journey_steps_mark_stages")]
    {
        for (event, referencing) in [
            ("INSERT", "NEW TABLE AS new_rows"),
            ("UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows"),
            ("DELETE", "OLD TABLE AS old_rows"),
        ] {
            let lower = event.to_lowercase();
            sql.push(format!(
                "CREATE TRIGGER {table}_steps_{lower} AFTER {event} ON {table} REFERENCING {referencing} \
                 FOR EACH STATEMENT EXECUTE FUNCTION {function}()"
            ));
        }
    }
    sql
}

fn sqlite_triggers() -> Vec<String> {
    let pair = |row: &str| {
        format!(
            "INSERT INTO journey_steps_dirty (journey_id, customer_id) VALUES ({row}.journey_id, {row}.customer_id);"
        )
    };
    let whole = |row: &str| {
        format!("INSERT INTO journey_steps_dirty (journey_id, customer_id) VALUES ({row}.journey_id, NULL);")
    };
    vec![
        format!("CREATE TRIGGER touchpoints_steps_insert AFTER INSERT ON touchpoints BEGIN {} END", pair("NEW")),
        format!(
            "CREATE TRIGGER touchpoints_steps_update AFTER UPDATE OF {} ON touchpoints BEGIN {} {} END",
            TOUCHPOINT_COLUMNS.join(", "),
            pair("OLD"),
            pair("NEW")
        ),
        format!("CREATE TRIGGER touchpoints_steps_delete AFTER DELETE ON touchpoints BEGIN {} END", pair("OLD")),
        format!("CREATE TRIGGER journey_stages_steps_insert AFTER INSERT ON journey_stages BEGIN {} END", whole("NEW")),
        format!(
            "CREATE TRIGGER journey_stages_steps_update AFTER UPDATE OF journey_id, position ON journey_stages \
             BEGIN {} {} END",
            whole("OLD"),
            whole("NEW")
        ),
        format!("CREATE TRIGGER journey_stages_steps_delete AFTER DELETE ON journey_stages BEGIN {} END", whole("OLD")),
    ]
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        let triggers = match backend {
            DatabaseBackend::Postgres => postgres_triggers(),
            _ => sqlite_triggers(),
        };
        execute_all(manager, tables(backend).into_iter().chain(triggers).collect()).await?;
        // Touchpoints stored before the steps existed: every journey is to be walked.
        manager
            .get_connection()
            .execute_unprepared(
                "INSERT INTO journey_steps_dirty (journey_id, customer_id) SELECT id, NULL FROM journeys",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let functions = ["journey_steps_mark_touchpoints", "journey_steps_mark_stages"];
        drop_triggers(manager, &["touchpoints", "journey_stages"], "steps", &functions).await?;
        execute_all(
            manager,
            ["journey_steps_dirty", "journey_steps"].map(|t| format!("DROP TABLE IF EXISTS {t}")).to_vec(),
        )
        .await
    }
}
