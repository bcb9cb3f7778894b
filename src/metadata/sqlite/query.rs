//! Translation of a [`ListQuery`] into SQLite: the WHERE clause, ORDER BY and paging.
//!
//! Column names come only from the resource's [`Schema`] (fields are `&'static str` that
//! equal the column names); every value, label keys included, is a bound parameter.

use sqlx::Sqlite;
use sqlx::query::Query;
use sqlx::sqlite::SqliteArguments;

use crate::domain::Timestamp;
use crate::domain::list::{
    Clause, Direction, Field, FieldType, ListQuery, Op, OrderTerm, Schema, Value, schemas,
};
use crate::metadata::Error;

/// A listable table and the schema its queries were validated against.
#[derive(Debug, Clone, Copy)]
pub(super) struct Table {
    /// The table name.
    pub(super) name: &'static str,
    /// The filterable and orderable fields, each a column of the table.
    schema: &'static Schema,
}

/// The `databases` table.
pub(super) const DATABASES: Table = Table { name: "databases", schema: &schemas::DATABASES };
/// The `destinations` table.
pub(super) const DESTINATIONS: Table = Table { name: "destinations", schema: &schemas::DESTINATIONS };
/// The `backups` table.
pub(super) const BACKUPS: Table = Table { name: "backups", schema: &schemas::BACKUPS };
/// The `operations` table.
pub(super) const OPERATIONS: Table = Table { name: "operations", schema: &schemas::OPERATIONS };

impl Table {
    // A query parsed against another resource's schema may name a field this table does
    // not have; refuse it rather than let SQLite guess.
    fn field(&self, name: &str) -> Result<&'static Field, Error> {
        self.schema
            .fields
            .iter()
            .find(|field| field.name == name)
            .ok_or_else(|| Error::Backend(format!("{} cannot be filtered or ordered by {name}", self.name)))
    }
}

/// A value bound to a `?` placeholder.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Param {
    /// Bound as TEXT.
    Text(String),
    /// Bound as INTEGER.
    Integer(i64),
    /// Bound as NULL.
    Null,
}

impl From<&str> for Param {
    fn from(text: &str) -> Self {
        Param::Text(text.to_owned())
    }
}

impl From<String> for Param {
    fn from(text: String) -> Self {
        Param::Text(text)
    }
}

impl From<i64> for Param {
    fn from(number: i64) -> Self {
        Param::Integer(number)
    }
}

impl From<u32> for Param {
    fn from(number: u32) -> Self {
        Param::Integer(i64::from(number))
    }
}

impl<T: Into<Param>> From<Option<T>> for Param {
    fn from(value: Option<T>) -> Self {
        value.map_or(Param::Null, Into::into)
    }
}

/// SQL text with `?` placeholders and their values, in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Sql {
    /// The text.
    pub(super) text: String,
    /// The values of the placeholders in `text`, in order.
    pub(super) params: Vec<Param>,
}

impl Sql {
    /// The statement with its parameters bound, ready to run.
    pub(super) fn query(&self) -> Query<'_, Sqlite, SqliteArguments<'_>> {
        let mut query = sqlx::query(&self.text);
        for param in &self.params {
            query = match param {
                Param::Text(text) => query.bind(text.as_str()),
                Param::Integer(number) => query.bind(*number),
                Param::Null => query.bind(None::<i64>),
            };
        }
        query
    }

    fn push(&mut self, text: &str) {
        self.text.push_str(text);
    }

    fn bind(&mut self, param: Param) {
        self.params.push(param);
    }
}

/// The SELECT of one page and the COUNT of all matches, sharing one WHERE clause.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct ListSql {
    /// `SELECT * ... LIMIT ? OFFSET ?`, the limit and offset included in the params.
    pub(super) select: Sql,
    /// `SELECT COUNT(*) ...`.
    pub(super) count: Sql,
}

/// Builds the statements that list `table` as `query` asks.
pub(super) fn list_sql(table: Table, query: &ListQuery) -> Result<ListSql, Error> {
    let filter = where_clause(table, &query.filter)?;
    let order = order_by(table, &query.order_by)?;
    let count = Sql { text: format!("SELECT COUNT(*) FROM {}{}", table.name, filter.text), ..filter.clone() };
    let mut select = Sql { text: format!("SELECT * FROM {}{}{order}", table.name, filter.text), ..filter };
    select.push(" LIMIT ? OFFSET ?");
    // `ListQuery::all` asks for u32::MAX items, which fits an i64; an offset beyond i64
    // cannot be reached by any table, so capping it changes nothing.
    select.bind(Param::Integer(i64::from(query.page_size)));
    select.bind(Param::Integer(i64::try_from(query.offset).unwrap_or(i64::MAX)));
    Ok(ListSql { select, count })
}

fn where_clause(table: Table, clauses: &[Clause]) -> Result<Sql, Error> {
    let mut sql = Sql::default();
    for (index, clause) in clauses.iter().enumerate() {
        sql.push(if index == 0 { " WHERE " } else { " AND " });
        condition(table, clause, &mut sql)?;
    }
    Ok(sql)
}

fn condition(table: Table, clause: &Clause, sql: &mut Sql) -> Result<(), Error> {
    let field = table.field(clause.field)?;
    let column = field.name;
    match (field.field_type, &clause.value) {
        (FieldType::Labels, _) => label_condition(table, clause, sql),
        // `:` on text is "contains"; instr() has no wildcards to escape, unlike LIKE.
        (FieldType::Text, Value::Text(text)) if clause.op == Op::Has => {
            sql.push(&format!("instr({column}, ?) > 0"));
            sql.bind(Param::Text(text.clone()));
            Ok(())
        }
        // Enum values are whole words, so `:` is equality (`kind:backup` must not match
        // `import_backup`).
        (FieldType::Text | FieldType::Enum(_), Value::Text(text)) => {
            compare(sql, column, clause.op, Param::Text(text.clone()));
            Ok(())
        }
        (FieldType::Integer, Value::Integer(number)) => {
            compare(sql, column, clause.op, Param::Integer(*number));
            Ok(())
        }
        (FieldType::Time, Value::Time(time)) => {
            time_condition(sql, column, clause.op, *time);
            Ok(())
        }
        _ => Err(mismatch(table, clause)),
    }
}

fn mismatch(table: Table, clause: &Clause) -> Error {
    let value_type = match clause.value {
        Value::Text(_) => "text",
        Value::Time(_) => "time",
        Value::Integer(_) => "integer",
        Value::None => "missing",
    };
    Error::Backend(format!(
        "{} cannot filter {} with {:?} and a {value_type} value",
        table.name, clause.field, clause.op
    ))
}

/// `column op ?`. `!=` is the negation of `=`, so it also matches NULL (a backup with no
/// database is one whose `database_id != "x"`); ordering operators never match NULL.
fn compare(sql: &mut Sql, column: &str, op: Op, param: Param) {
    let operator = match op {
        Op::Eq | Op::Has => "=",
        Op::Ne => "IS NOT",
        Op::Lt => "<",
        Op::Le => "<=",
        Op::Gt => ">",
        Op::Ge => ">=",
    };
    sql.push(&format!("{column} {operator} ?"));
    sql.bind(param);
}

/// Stored times are whole microseconds. A bound between two of them (a filter time with
/// nanoseconds) is moved onto the microsecond below it, adjusting the operator so the
/// comparison keeps its meaning: `x < 10.5` is `x <= 10`, `x > 10.5` is `x > 10`.
fn time_condition(sql: &mut Sql, column: &str, op: Op, time: Timestamp) {
    // Floor: the seconds are floored and the sub-second part is never negative.
    let micros = time.timestamp_micros();
    let whole_micros = time.timestamp_subsec_nanos().is_multiple_of(1_000);
    let op = match (op, whole_micros) {
        (op, true) => op,
        (Op::Lt | Op::Le, false) => Op::Le,
        (Op::Gt | Op::Ge, false) => Op::Gt,
        (Op::Eq | Op::Has, false) => return sql.push("FALSE"),
        (Op::Ne, false) => return sql.push("TRUE"),
    };
    compare(sql, column, op, Param::Integer(micros));
}

/// Label clauses look the key up with json_each, so the key is a bound value and never
/// part of a JSON path (keys may hold `.`, `"` or `$`). `!=` is the negation of `=`, so
/// it matches resources without the key, as in Kubernetes label selectors.
fn label_condition(table: Table, clause: &Clause, sql: &mut Sql) -> Result<(), Error> {
    let Some(key) = &clause.label_key else {
        return Err(mismatch(table, clause));
    };
    let (exists, value_test) = match (clause.op, &clause.value) {
        (Op::Has, Value::None) => ("EXISTS", None),
        (Op::Has, Value::Text(text)) => ("EXISTS", Some(("instr(label.value, ?) > 0", text))),
        (Op::Eq, Value::Text(text)) => ("EXISTS", Some(("label.value = ?", text))),
        (Op::Ne, Value::Text(text)) => ("NOT EXISTS", Some(("label.value = ?", text))),
        (Op::Lt, Value::Text(text)) => ("EXISTS", Some(("label.value < ?", text))),
        (Op::Le, Value::Text(text)) => ("EXISTS", Some(("label.value <= ?", text))),
        (Op::Gt, Value::Text(text)) => ("EXISTS", Some(("label.value > ?", text))),
        (Op::Ge, Value::Text(text)) => ("EXISTS", Some(("label.value >= ?", text))),
        _ => return Err(mismatch(table, clause)),
    };
    sql.push(&format!(
        "{exists} (SELECT 1 FROM json_each({}.labels) AS label WHERE label.key = ?",
        table.name
    ));
    sql.bind(Param::Text(key.clone()));
    if let Some((test, text)) = value_test {
        sql.push(" AND ");
        sql.push(test);
        sql.bind(Param::Text(text.clone()));
    }
    sql.push(")");
    Ok(())
}

/// ` ORDER BY ...`: the terms, or `create_time DESC` when there are none, then the id as
/// the final tie-breaker so pages never overlap. NULL sorts above every value (a backup
/// that never expires comes last in `expire_time asc`), as PostgreSQL does by default.
fn order_by(table: Table, terms: &[OrderTerm]) -> Result<String, Error> {
    const DEFAULT: OrderTerm = OrderTerm { field: "create_time", direction: Direction::Desc };
    let terms = if terms.is_empty() { std::slice::from_ref(&DEFAULT) } else { terms };
    let mut parts = Vec::with_capacity(terms.len() + 1);
    for term in terms {
        let field = table.field(term.field)?;
        if matches!(field.field_type, FieldType::Labels) {
            return Err(Error::Backend(format!("{} cannot be ordered by labels", table.name)));
        }
        let direction = match term.direction {
            Direction::Asc => "ASC NULLS LAST",
            Direction::Desc => "DESC NULLS FIRST",
        };
        parts.push(format!("{} {direction}", field.name));
    }
    parts.push("id ASC".to_owned());
    Ok(format!(" ORDER BY {}", parts.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(filter: &str, order_by: &str, text: &str, params: &[Param]) {
        let query = ListQuery::parse(&schemas::BACKUPS, 10, "", filter, order_by).unwrap();
        let sql = list_sql(BACKUPS, &query).unwrap();
        let mut expected = params.to_vec();
        expected.extend([Param::Integer(10), Param::Integer(0)]);
        assert_eq!(sql.select.text, text, "{filter}");
        assert_eq!(sql.select.params, expected, "{filter}");
        assert!(sql.select.text.starts_with(&sql.count.text.replace("COUNT(*)", "*")), "{filter}");
        assert_eq!(sql.count.params, params, "{filter}");
    }

    fn text(value: &str) -> Param {
        Param::Text(value.to_owned())
    }

    #[test]
    fn filters_become_bound_conditions() {
        const DEFAULT_ORDER: &str = " ORDER BY create_time DESC NULLS FIRST, id ASC LIMIT ? OFFSET ?";
        check("", "", &format!("SELECT * FROM backups{DEFAULT_ORDER}"), &[]);
        check(
            r#"name:"x' OR 1" AND state != READY"#,
            "",
            &format!("SELECT * FROM backups WHERE instr(name, ?) > 0 AND state IS NOT ?{DEFAULT_ORDER}"),
            &[text("x' OR 1"), text("ready")],
        );
        check(
            r#"size_bytes >= 5 AND create_time < "2026-01-01T00:00:00.0000005Z""#,
            "size_bytes desc, name",
            "SELECT * FROM backups WHERE size_bytes >= ? AND create_time <= ? \
             ORDER BY size_bytes DESC NULLS FIRST, name ASC NULLS LAST, id ASC LIMIT ? OFFSET ?",
            &[Param::Integer(5), Param::Integer(1_767_225_600_000_000)],
        );
        check(
            r#"labels.a.b != "v" AND labels:k"#,
            "",
            &format!(
                "SELECT * FROM backups WHERE NOT EXISTS (SELECT 1 FROM json_each(backups.labels) AS label \
                 WHERE label.key = ? AND label.value = ?) AND EXISTS (SELECT 1 FROM \
                 json_each(backups.labels) AS label WHERE label.key = ?){DEFAULT_ORDER}"
            ),
            &[text("a.b"), text("v"), text("k")],
        );
    }

    #[test]
    fn sub_microsecond_bounds() {
        let time = chrono::DateTime::from_timestamp(10, 500).unwrap();
        let cases = [
            (Op::Lt, "create_time <= ?"),
            (Op::Le, "create_time <= ?"),
            (Op::Gt, "create_time > ?"),
            (Op::Ge, "create_time > ?"),
            (Op::Eq, "FALSE"),
            (Op::Ne, "TRUE"),
        ];
        for (op, expected) in cases {
            let mut sql = Sql::default();
            time_condition(&mut sql, "create_time", op, time);
            assert_eq!(sql.text, expected, "{op:?}");
        }
    }

    #[test]
    fn foreign_fields_are_refused() {
        let query = ListQuery::parse(&schemas::BACKUPS, 10, "", "state = READY", "").unwrap();
        assert!(matches!(list_sql(DATABASES, &query), Err(Error::Backend(_))));
        let query = ListQuery::parse(&schemas::BACKUPS, 10, "", "", "size_bytes").unwrap();
        assert!(matches!(list_sql(OPERATIONS, &query), Err(Error::Backend(_))));
    }

    #[test]
    fn all_has_no_practical_limit() {
        let sql = list_sql(DESTINATIONS, &ListQuery::all(Vec::new())).unwrap();
        assert_eq!(sql.select.params, [Param::Integer(i64::from(u32::MAX)), Param::Integer(0)]);
    }
}
