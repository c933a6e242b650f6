//! Small helpers that keep the migrations declarative: a table is a list of columns,
//! foreign keys and indexes, and dropping it undoes exactly that.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

/// Whole `unit_seconds` periods since 1970 UTC of the timestamp `column` (hours for
/// the insight rollups, days for the funnel's), the same on both backends.
pub fn epoch_units(backend: sea_orm_migration::sea_orm::DatabaseBackend, column: &str, unit_seconds: u32) -> String {
    match backend {
        sea_orm_migration::sea_orm::DatabaseBackend::Postgres => {
            format!("FLOOR(EXTRACT(EPOCH FROM {column}) / {unit_seconds})::BIGINT")
        }
        _ => format!("CAST(strftime('%s', {column}) AS INTEGER) / {unit_seconds}"),
    }
}

/// Width of the string columns that hold an enum value (`entity::enums`).
pub const ENUM_LEN: u32 = 24;

/// A not-null enum column.
pub fn enum_col(name: &'static str) -> ColumnDef {
    string_len(name, ENUM_LEN)
}

/// A nullable enum column.
pub fn enum_col_null(name: &'static str) -> ColumnDef {
    string_len_null(name, ENUM_LEN)
}

/// A UTC timestamp column (`timestamptz` on PostgreSQL).
pub fn ts(name: &'static str) -> ColumnDef {
    timestamp_with_time_zone(name)
}

/// A nullable UTC timestamp column.
pub fn ts_null(name: &'static str) -> ColumnDef {
    timestamp_with_time_zone_null(name)
}

/// A foreign key `table.column → target.id` with a deliberate `ON DELETE`.
pub fn fk(
    table: &'static str,
    column: &'static str,
    target: &'static str,
    on_delete: ForeignKeyAction,
) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(format!("fk_{table}_{column}"))
        .from(table, column)
        .to(target, "id")
        .on_delete(on_delete)
        .on_update(ForeignKeyAction::NoAction)
        .take()
}

/// A table definition: columns, foreign keys, and the indexes created after it.
pub struct TableDef {
    pub create: TableCreateStatement,
    pub indexes: Vec<IndexCreateStatement>,
    name: &'static str,
}

impl TableDef {
    pub fn new(name: &'static str) -> Self {
        Self { create: Table::create().table(name).take(), indexes: Vec::new(), name }
    }

    pub fn col(mut self, col: ColumnDef) -> Self {
        self.create.col(col);
        self
    }

    pub fn fk(mut self, column: &'static str, target: &'static str, on_delete: ForeignKeyAction) -> Self {
        self.create.foreign_key(&mut fk(self.name, column, target, on_delete));
        self
    }

    /// A composite primary key (link tables).
    pub fn primary_key(mut self, columns: &[&'static str]) -> Self {
        let mut pk = Index::create();
        for c in columns {
            pk.col(*c);
        }
        self.create.primary_key(&mut pk);
        self
    }

    fn add_index(mut self, columns: &[&'static str], unique: bool) -> Self {
        let prefix = if unique { "ux" } else { "ix" };
        let mut idx =
            Index::create().name(format!("{prefix}_{}_{}", self.name, columns.join("_"))).table(self.name).take();
        for c in columns {
            idx.col(*c);
        }
        if unique {
            idx.unique();
        }
        self.indexes.push(idx);
        self
    }

    pub fn index(self, columns: &[&'static str]) -> Self {
        self.add_index(columns, false)
    }

    pub fn unique(self, columns: &[&'static str]) -> Self {
        self.add_index(columns, true)
    }
}

/// Creates the tables in order, each followed by its indexes.
pub async fn create_all(manager: &SchemaManager<'_>, tables: Vec<TableDef>) -> Result<(), DbErr> {
    for table in tables {
        manager.create_table(table.create).await?;
        for index in table.indexes {
            manager.create_index(index).await?;
        }
    }
    Ok(())
}

/// Drops the tables in reverse order (their indexes go with them).
pub async fn drop_all(manager: &SchemaManager<'_>, tables: &[&'static str]) -> Result<(), DbErr> {
    for table in tables.iter().rev() {
        manager.drop_table(Table::drop().table(*table).to_owned()).await?;
    }
    Ok(())
}

/// An index added after its table: `(name, table, columns)`.
pub type IndexDef = (&'static str, &'static str, &'static [&'static str]);

/// Creates the indexes in order.
pub async fn create_indexes(manager: &SchemaManager<'_>, indexes: &[IndexDef]) -> Result<(), DbErr> {
    for (name, table, columns) in indexes {
        let mut index = Index::create().name(*name).table(*table).to_owned();
        for c in *columns {
            index.col(*c);
        }
        manager.create_index(index).await?;
    }
    Ok(())
}

/// Drops the indexes.
pub async fn drop_indexes(manager: &SchemaManager<'_>, indexes: &[IndexDef]) -> Result<(), DbErr> {
    for (name, table, _) in indexes {
        manager.drop_index(Index::drop().name(*name).table(*table).to_owned()).await?;
    }
    Ok(())
}

/// Runs SQL statements in order (DDL the schema builder cannot say: triggers,
/// composite keys, `INCLUDE`).
pub async fn execute_all(manager: &SchemaManager<'_>, statements: Vec<String>) -> Result<(), DbErr> {
    let db = manager.get_connection();
    for statement in statements {
        db.execute_unprepared(&statement).await?;
    }
    Ok(())
}

/// Drops the insert, update and delete triggers `{table}_{kind}_{event}` of `tables`
/// and, on PostgreSQL, the trigger `functions` they executed.
pub async fn drop_triggers(
    manager: &SchemaManager<'_>,
    tables: &[&str],
    kind: &str,
    functions: &[&str],
) -> Result<(), DbErr> {
    let postgres = manager.get_database_backend() == sea_orm_migration::sea_orm::DatabaseBackend::Postgres;
    let mut sql = Vec::new();
    for table in tables {
        for event in ["insert", "update", "delete"] {
            let on = if postgres { format!(" ON {table}") } else { String::new() };
            sql.push(format!("DROP TRIGGER IF EXISTS {table}_{kind}_{event}{on}"));
        }
    }
    if postgres {
        sql.extend(functions.iter().map(|f| format!("DROP FUNCTION IF EXISTS {f}()")));
    }
    execute_all(manager, sql).await
}

/// The migration of a list of tables: `up` creates them (with their indexes) in order,
/// `down` drops them in reverse. Each migration file then holds only its `tables()`.
#[macro_export]
macro_rules! table_migration {
    ($($table:literal),+ $(,)?) => {
        #[derive(DeriveMigrationName)]
        pub struct Migration;

        const TABLES: &[&str] = &[$($table),+];

        #[async_trait::async_trait]
        impl MigrationTrait for Migration {
            async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
                create_all(manager, tables()).await
            }

            async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
                drop_all(manager, TABLES).await
            }
        }
    };
}
