//! List queries: page size and token (AIP-158), the filter subset (AIP-160) and order_by.
//!
//! A [`ListQuery`] is parsed once at the boundary against the [`Schema`] of the resource
//! being listed, so metadata stores receive only known fields, typed values and valid
//! orderings. Filter grammar: `clause (AND clause)*` where a clause is
//! `field op value`, `op` one of `=`, `!=`, `<`, `>`, `<=`, `>=`, `:` (has); values are
//! bare words or double-quoted strings; `labels.KEY = "v"` and `labels:KEY` address labels.

use super::{Invalid, Timestamp};

/// Page size when the request gives none (or 0).
pub const DEFAULT_PAGE_SIZE: u32 = 50;
/// Largest page served; larger requests are clamped to it.
pub const MAX_PAGE_SIZE: u32 = 1000;

/// The type of a filterable field.
#[derive(Debug, Clone, Copy)]
pub enum FieldType {
    /// Free text, compared as strings; `:` means "contains".
    Text,
    /// A closed set of values; the parser normalizes `BACKUP_STATE_READY` to `ready`.
    Enum(fn(&str) -> Option<&'static str>),
    /// An RFC 3339 timestamp.
    Time,
    /// A whole number.
    Integer,
    /// The labels map: `labels.KEY op value`, or `labels:KEY` for "has key".
    Labels,
}

/// A field that can be filtered and/or ordered on.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    /// The API name, which is also the name stores use for it.
    pub name: &'static str,
    /// Its type.
    pub field_type: FieldType,
}

/// The list-able fields of one resource.
#[derive(Debug, Clone, Copy)]
pub struct Schema {
    /// The fields.
    pub fields: &'static [Field],
}

impl Schema {
    fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|field| field.name == name)
    }

    fn names(&self) -> String {
        self.fields.iter().map(|field| field.name).collect::<Vec<_>>().join(", ")
    }
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `:` (has / contains)
    Has,
}

/// A typed filter value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Text (also normalized enum text).
    Text(String),
    /// A timestamp.
    Time(Timestamp),
    /// A whole number.
    Integer(i64),
    /// No value: `labels:KEY`.
    None,
}

/// One `field op value` clause.
#[derive(Debug, Clone, PartialEq)]
pub struct Clause {
    /// The field's API name.
    pub field: &'static str,
    /// For label clauses, the label key.
    pub label_key: Option<String>,
    /// The operator.
    pub op: Op,
    /// The value.
    pub value: Value,
}

/// A sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Smallest first.
    Asc,
    /// Largest first.
    Desc,
}

/// One `order_by` term.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderTerm {
    /// The field's API name.
    pub field: &'static str,
    /// The direction.
    pub direction: Direction,
}

/// A validated list request.
#[derive(Debug, Clone, PartialEq)]
pub struct ListQuery {
    /// Items per page, 1..=MAX_PAGE_SIZE.
    pub page_size: u32,
    /// Items to skip (decoded from the page token).
    pub offset: u64,
    /// Clauses joined by AND.
    pub filter: Vec<Clause>,
    /// Sort terms; stores add the id as a final tie-breaker. Empty means
    /// `create_time desc`.
    pub order_by: Vec<OrderTerm>,
    fingerprint: String,
}

/// A page of results.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Token of the next page; empty on the last page.
    pub next_page_token: String,
    /// How many items match the filter in all.
    pub total_size: u64,
}

impl ListQuery {
    /// Validates a list request's raw fields against a schema, reporting every problem.
    pub fn parse(
        schema: &Schema,
        page_size: i32,
        page_token: &str,
        filter: &str,
        order_by: &str,
    ) -> Result<Self, Invalid> {
        let mut invalid = Invalid::default();
        let page_size = match page_size {
            ..0 => {
                invalid.add("page_size", "must not be negative");
                DEFAULT_PAGE_SIZE
            }
            0 => DEFAULT_PAGE_SIZE,
            size => (size as u32).min(MAX_PAGE_SIZE),
        };
        let filter = parse_filter(schema, filter)
            .map_err(|problem| invalid.add("filter", problem))
            .unwrap_or_default();
        let order = parse_order_by(schema, order_by)
            .map_err(|problem| invalid.add("order_by", problem))
            .unwrap_or_default();
        let fingerprint = fingerprint(&filter, order_by);
        let offset = decode_token(page_token, &fingerprint)
            .map_err(|problem| invalid.add("page_token", problem))
            .unwrap_or(0);
        invalid.into_result(|| ListQuery { page_size, offset, filter, order_by: order, fingerprint })
    }

    /// A query for everything matching `filter`, in default order (for internal callers).
    pub fn all(filter: Vec<Clause>) -> Self {
        ListQuery { page_size: u32::MAX, offset: 0, filter, order_by: Vec::new(), fingerprint: String::new() }
    }

    /// Builds the page a store found: `items` is at most `page_size` items starting at
    /// `offset`, `total_size` the count of all matches.
    pub fn page<T>(&self, items: Vec<T>, total_size: u64) -> Page<T> {
        let next_offset = self.offset + items.len() as u64;
        let next_page_token = if next_offset < total_size && !items.is_empty() {
            encode_token(next_offset, &self.fingerprint)
        } else {
            String::new()
        };
        Page { items, next_page_token, total_size }
    }
}

// The fingerprint ties a page token to the filter and order it was made for (AIP-158: a
// token used with other parameters is an error). It is built from the normalized clauses.
fn fingerprint(filter: &[Clause], order_by: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("{filter:?}\n{}", order_by.trim()));
    hex::encode(&digest[..6])
}

fn encode_token(offset: u64, fingerprint: &str) -> String {
    format!("{offset:x}.{fingerprint}")
}

fn decode_token(token: &str, fingerprint: &str) -> Result<u64, String> {
    if token.is_empty() {
        return Ok(0);
    }
    let (offset, made_for) = token.split_once('.').ok_or("is not a token this server issued")?;
    if made_for != fingerprint {
        return Err("was issued for a different filter or order_by".to_owned());
    }
    u64::from_str_radix(offset, 16).map_err(|_| "is not a token this server issued".to_owned())
}

fn parse_order_by(schema: &Schema, text: &str) -> Result<Vec<OrderTerm>, String> {
    let mut terms = Vec::new();
    for part in text.split(',').map(str::trim).filter(|part| !part.is_empty()) {
        let mut words = part.split_whitespace();
        let name = words.next().unwrap_or_default();
        let direction = match words.next().map(str::to_ascii_lowercase).as_deref() {
            None | Some("asc") => Direction::Asc,
            Some("desc") => Direction::Desc,
            Some(other) => return Err(format!("unknown direction '{other}' for '{name}'; use asc or desc")),
        };
        if words.next().is_some() {
            return Err(format!("cannot parse '{part}'; expected 'field [asc|desc]'"));
        }
        let field = schema
            .field(name)
            .filter(|field| !matches!(field.field_type, FieldType::Labels))
            .ok_or_else(|| format!("cannot order by '{name}'; fields: {}", schema.names()))?;
        terms.push(OrderTerm { field: field.name, direction });
    }
    Ok(terms)
}

fn parse_filter(schema: &Schema, text: &str) -> Result<Vec<Clause>, String> {
    let tokens = tokenize(text)?;
    let mut clauses = Vec::new();
    let mut rest = tokens.as_slice();
    while !rest.is_empty() {
        let (clause, after) = parse_clause(schema, rest)?;
        clauses.push(clause);
        rest = match after {
            [] => after,
            [Token::Word(and), tail @ ..] if and == "AND" && !tail.is_empty() => tail,
            [Token::Word(word), ..]
                if word.eq_ignore_ascii_case("or") || word.eq_ignore_ascii_case("not") =>
            {
                return Err(format!("'{word}' is not supported; join clauses with AND"));
            }
            _ => return Err("expected AND between clauses".to_owned()),
        };
    }
    Ok(clauses)
}

fn parse_clause<'a>(schema: &Schema, tokens: &'a [Token]) -> Result<(Clause, &'a [Token]), String> {
    let [Token::Word(path), Token::Op(op), rest @ ..] = tokens else {
        return Err("expected 'field op value'".to_owned());
    };
    let (name, label_key) = match path.split_once('.') {
        Some((name, key)) => (name, Some(key.to_owned())),
        None => (path.as_str(), None),
    };
    let field =
        schema.field(name).ok_or_else(|| format!("unknown field '{name}'; fields: {}", schema.names()))?;
    let is_labels = matches!(field.field_type, FieldType::Labels);
    if is_labels && label_key.is_none() && *op == Op::Has {
        // `labels:KEY` names the key as the value.
        let [Token::Word(key) | Token::Quoted(key), rest @ ..] = rest else {
            return Err("expected a label key after 'labels:'".to_owned());
        };
        let clause =
            Clause { field: field.name, label_key: Some(key.clone()), op: Op::Has, value: Value::None };
        return Ok((clause, rest));
    }
    if is_labels != label_key.is_some() {
        return Err(format!("'{path}' is not a field; labels are filtered as labels.KEY"));
    }
    let [Token::Word(raw) | Token::Quoted(raw), rest @ ..] = rest else {
        return Err(format!("expected a value after '{path}'"));
    };
    let value = typed_value(field, raw)?;
    Ok((Clause { field: field.name, label_key, op: *op, value }, rest))
}

fn typed_value(field: &Field, raw: &str) -> Result<Value, String> {
    match field.field_type {
        FieldType::Text | FieldType::Labels => Ok(Value::Text(raw.to_owned())),
        FieldType::Enum(parse) => parse(raw)
            .map(|text| Value::Text(text.to_owned()))
            .ok_or_else(|| format!("'{raw}' is not a valid value for {}", field.name)),
        FieldType::Time => chrono::DateTime::parse_from_rfc3339(raw)
            .map(|time| Value::Time(time.with_timezone(&chrono::Utc)))
            .map_err(|_| format!("'{raw}' is not an RFC 3339 time for {}", field.name)),
        FieldType::Integer => raw
            .parse()
            .map(Value::Integer)
            .map_err(|_| format!("'{raw}' is not a whole number for {}", field.name)),
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Quoted(String),
    Op(Op),
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '"' => {
                chars.next();
                let mut value = String::new();
                loop {
                    match chars.next() {
                        None => return Err("unterminated quoted string".to_owned()),
                        Some('"') => break,
                        Some('\\') => value.extend(chars.next()),
                        Some(other) => value.push(other),
                    }
                }
                tokens.push(Token::Quoted(value));
            }
            '=' | '!' | '<' | '>' | ':' => {
                chars.next();
                let followed_by_eq = chars.next_if_eq(&'=').is_some();
                let op = match (c, followed_by_eq) {
                    ('=', false) => Op::Eq,
                    ('!', true) => Op::Ne,
                    ('<', false) => Op::Lt,
                    ('<', true) => Op::Le,
                    ('>', false) => Op::Gt,
                    ('>', true) => Op::Ge,
                    (':', false) => Op::Has,
                    _ => return Err(format!("unknown operator near '{c}'")),
                };
                tokens.push(Token::Op(op));
            }
            _ => {
                let mut word = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace()
                        || matches!(c, '=' | '!' | '<' | '>' | '"')
                        || (c == ':' && !looks_like_time(&word))
                    {
                        break;
                    }
                    word.push(c);
                    chars.next();
                }
                tokens.push(Token::Word(word));
            }
        }
    }
    Ok(tokens)
}

// Bare RFC 3339 times (`2026-01-02T03:04:05Z`) contain ':'; inside such a word ':' is
// part of the value, not the has-operator.
fn looks_like_time(word: &str) -> bool {
    word.len() >= 11 && word.as_bytes()[4] == b'-' && word.contains('T')
}

/// The list schemas of the four listable resources.
pub mod schemas {
    use super::{Field, FieldType, Schema};
    use crate::domain::{BackupOrigin, BackupState, Compression, EngineKind, OperationKind, OperationState};

    const fn field(name: &'static str, field_type: FieldType) -> Field {
        Field { name, field_type }
    }

    /// `ListDatabases`.
    pub const DATABASES: Schema = Schema {
        fields: &[
            field("name", FieldType::Text),
            field("project_id", FieldType::Text),
            field("engine", FieldType::Enum(|text| EngineKind::parse(text).map(|value| value.as_str()))),
            field("create_time", FieldType::Time),
            field("update_time", FieldType::Time),
            field("labels", FieldType::Labels),
        ],
    };

    /// `ListDestinations`.
    pub const DESTINATIONS: Schema = Schema {
        fields: &[
            field("name", FieldType::Text),
            field("create_time", FieldType::Time),
            field("update_time", FieldType::Time),
            field("labels", FieldType::Labels),
        ],
    };

    /// `ListBackups`.
    pub const BACKUPS: Schema = Schema {
        fields: &[
            field("name", FieldType::Text),
            field("database_id", FieldType::Text),
            field("instance_name", FieldType::Text),
            field("database_name", FieldType::Text),
            field("project_id", FieldType::Text),
            field("destination_id", FieldType::Text),
            field("engine", FieldType::Enum(|text| EngineKind::parse(text).map(|value| value.as_str()))),
            field("state", FieldType::Enum(|text| BackupState::parse(text).map(|value| value.as_str()))),
            field("origin", FieldType::Enum(|text| BackupOrigin::parse(text).map(|value| value.as_str()))),
            field(
                "compression",
                FieldType::Enum(|text| Compression::parse(text).map(|value| value.as_str())),
            ),
            field("size_bytes", FieldType::Integer),
            field("create_time", FieldType::Time),
            field("update_time", FieldType::Time),
            field("expire_time", FieldType::Time),
            field("labels", FieldType::Labels),
        ],
    };

    /// `ListOperations`.
    pub const OPERATIONS: Schema = Schema {
        fields: &[
            field("database_id", FieldType::Text),
            field("backup_id", FieldType::Text),
            field("kind", FieldType::Enum(|text| OperationKind::parse(text).map(|value| value.as_str()))),
            field("state", FieldType::Enum(|text| OperationState::parse(text).map(|value| value.as_str()))),
            field("create_time", FieldType::Time),
            field("update_time", FieldType::Time),
        ],
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::BackupState;

    const SCHEMA: Schema = Schema {
        fields: &[
            Field { name: "name", field_type: FieldType::Text },
            Field {
                name: "state",
                field_type: FieldType::Enum(|text| BackupState::parse(text).map(|state| state.as_str())),
            },
            Field { name: "create_time", field_type: FieldType::Time },
            Field { name: "size_bytes", field_type: FieldType::Integer },
            Field { name: "labels", field_type: FieldType::Labels },
        ],
    };

    fn check(filter: &str, expected: Result<Vec<Clause>, &str>) {
        match (ListQuery::parse(&SCHEMA, 0, "", filter, ""), expected) {
            (Ok(query), Ok(clauses)) => assert_eq!(query.filter, clauses, "{filter}"),
            (Err(invalid), Err(fragment)) => {
                assert_eq!(invalid.violations[0].field, "filter");
                assert!(invalid.violations[0].description.contains(fragment), "{filter}: {invalid}");
            }
            (got, want) => panic!("{filter}: got {got:?}, want {want:?}"),
        }
    }

    fn clause(field: &'static str, op: Op, value: Value) -> Clause {
        Clause { field, label_key: None, op, value }
    }

    #[test]
    fn filters() {
        check("", Ok(vec![]));
        check("state = BACKUP_STATE_READY", Ok(vec![clause("state", Op::Eq, Value::Text("ready".into()))]));
        check(
            r#"name != "a b" AND size_bytes>=10"#,
            Ok(vec![
                clause("name", Op::Ne, Value::Text("a b".into())),
                clause("size_bytes", Op::Ge, Value::Integer(10)),
            ]),
        );
        let time =
            chrono::DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z").unwrap().with_timezone(&chrono::Utc);
        check(
            "create_time > 2026-01-02T03:04:05Z",
            Ok(vec![clause("create_time", Op::Gt, Value::Time(time))]),
        );
        check(
            r#"labels.env = "prod" AND labels:tier"#,
            Ok(vec![
                Clause {
                    field: "labels",
                    label_key: Some("env".into()),
                    op: Op::Eq,
                    value: Value::Text("prod".into()),
                },
                Clause { field: "labels", label_key: Some("tier".into()), op: Op::Has, value: Value::None },
            ]),
        );
        check("name:nightly", Ok(vec![clause("name", Op::Has, Value::Text("nightly".into()))]));
        check("colour = red", Err("unknown field 'colour'"));
        check("state = SHINY", Err("not a valid value"));
        check("a = b OR c = d", Err("unknown field"));
        check("name = a OR name = b", Err("'OR' is not supported"));
        check("name = a name = b", Err("expected AND"));
        check("name =", Err("expected a value"));
        check("name = \"open", Err("unterminated"));
        check("size_bytes = many", Err("whole number"));
        check("create_time < yesterday", Err("RFC 3339"));
        check("name = a AND", Err("expected AND"));
    }

    #[test]
    fn order_by_and_page_size() {
        let query = ListQuery::parse(&SCHEMA, 2000, "", "", "create_time desc, name").unwrap();
        assert_eq!(query.page_size, MAX_PAGE_SIZE);
        assert_eq!(
            query.order_by,
            vec![
                OrderTerm { field: "create_time", direction: Direction::Desc },
                OrderTerm { field: "name", direction: Direction::Asc }
            ]
        );
        let invalid = ListQuery::parse(&SCHEMA, -1, "junk", "", "colour, name sideways").unwrap_err();
        let fields: Vec<&str> = invalid.violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["page_size", "order_by", "page_token"]);
    }

    #[test]
    fn page_tokens_round_trip_and_are_tied_to_the_query() {
        let query = ListQuery::parse(&SCHEMA, 10, "", "name = a", "name").unwrap();
        let page = query.page(vec![0; 10], 25);
        assert_eq!(page.total_size, 25);
        let next = ListQuery::parse(&SCHEMA, 10, &page.next_page_token, "name = a", "name").unwrap();
        assert_eq!(next.offset, 10);
        assert!(ListQuery::parse(&SCHEMA, 10, &page.next_page_token, "name = b", "name").is_err());
        let last = ListQuery::parse(&SCHEMA, 10, "", "", "").unwrap().page(vec![0; 5], 5);
        assert_eq!(last.next_page_token, "");
    }
}
