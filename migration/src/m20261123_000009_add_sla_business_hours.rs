//! SLA targets may count business hours only: a policy's `business_hours`
//! (`{"days": [1..7], "start": h, "end": h, "utcOffsetMinutes": n}`) makes its minutes
//! count only while the service is open. Null keeps counting around the clock.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(Table::alter().table("sla_policies").add_column(json_binary_null("business_hours")).to_owned())
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.alter_table(Table::alter().table("sla_policies").drop_column("business_hours").to_owned()).await
    }
}
