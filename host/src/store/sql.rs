//! How the typed values the catalog stores as text are bound into SQL, on
//! both engines: every stored word (a run's state, a sync's status…) and
//! every time. Statements bind them (`state = ?2` with
//! `RunState::Submitting`) instead of spelling the word inside the SQL, so
//! the word a statement writes or matches is the one [`super::rows`] reads
//! back, by construction.
//!
//! (The migrations in each `schema.rs` keep their words literal: they are
//! history, and must do what they did when they were written.)

use super::model::{DeleteAfter, EntryState, RunState, SpecSource, SyncStatus};
use crate::stamp::Stamp;

/// `ToSql` for both engines, as the text `$text` gives.
macro_rules! bind_as_text {
    ($($ty:ty => |$v:ident| $text:expr;)+) => {$(
        impl rusqlite::ToSql for $ty {
            fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
                let $v = self;
                Ok(rusqlite::types::ToSqlOutput::from($text))
            }
        }

        impl tokio_postgres::types::ToSql for $ty {
            fn to_sql(
                &self,
                ty: &tokio_postgres::types::Type,
                out: &mut bytes::BytesMut,
            ) -> Result<tokio_postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
                let $v = self;
                tokio_postgres::types::ToSql::to_sql(&$text, ty, out)
            }

            fn accepts(ty: &tokio_postgres::types::Type) -> bool {
                <&str as tokio_postgres::types::ToSql>::accepts(ty)
            }

            tokio_postgres::types::to_sql_checked!();
        }
    )+};
}

bind_as_text! {
    Stamp => |v| v.to_string();
    RunState => |v| v.as_str();
    SyncStatus => |v| v.as_str();
    EntryState => |v| v.as_str();
    DeleteAfter => |v| v.as_str();
    SpecSource => |v| v.as_str();
}
