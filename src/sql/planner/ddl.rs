//! Planning CREATE TABLE and CREATE INDEX: types, keys, defaults and
//! constraints are checked here, before anything is written.

use super::bind::evaluate_constant;
use super::plan::Plan;
use crate::sql::error::{Result, SqlError};
use crate::sql::parser::ast;
use crate::sql::types::{DataType, Value, coerce};
use crate::storage::{Column, DefaultValue, Index, Table, Transaction};

/// The positions of the columns a table-level constraint (`clause`) names.
fn positions(columns: &[Column], names: &[String], clause: &str, table: &str) -> Result<Vec<usize>> {
    let mut out = Vec::new();
    for n in names {
        let i = columns.iter().position(|c| &c.name == n).ok_or_else(|| {
            SqlError::UnknownColumn(format!("{clause} column '{n}' does not exist in table '{table}'"))
        })?;
        if out.contains(&i) {
            return Err(SqlError::Invalid(format!("column '{n}' appears twice in {clause}")));
        }
        out.push(i);
    }
    Ok(out)
}

pub fn create_table(create: &ast::CreateTable) -> Result<Plan> {
    let name = &create.name;
    let mut columns: Vec<Column> = Vec::new();
    let mut primary_key: Vec<usize> = Vec::new();
    let mut unique: Vec<Vec<usize>> = Vec::new();
    for (i, def) in create.columns.iter().enumerate() {
        if columns.iter().any(|c| c.name == def.name) {
            return Err(SqlError::Invalid(format!(
                "column '{}' is defined twice in table '{name}'",
                def.name
            )));
        }
        if def.primary_key {
            if !primary_key.is_empty() {
                return Err(SqlError::Invalid(format!(
                    "table '{name}' has more than one PRIMARY KEY column; use PRIMARY KEY (a, b) for a composite key"
                )));
            }
            primary_key.push(i);
        }
        if def.unique {
            unique.push(vec![i]);
        }
        columns.push(column(def)?);
    }
    if !create.primary_key.is_empty() {
        if !primary_key.is_empty() {
            return Err(SqlError::Invalid(format!(
                "table '{name}' declares its PRIMARY KEY twice"
            )));
        }
        primary_key = positions(&columns, &create.primary_key, "PRIMARY KEY", name)?;
    }
    for names in &create.unique {
        let set = positions(&columns, names, "UNIQUE", name)?;
        if !unique.contains(&set) {
            unique.push(set);
        }
    }
    for &i in &primary_key {
        let c = &mut columns[i];
        if create.columns[i].nullable == Some(true) {
            return Err(SqlError::Invalid(format!(
                "PRIMARY KEY column '{}' cannot be NULL",
                c.name
            )));
        }
        c.nullable = false;
    }
    for c in &columns {
        if !c.nullable && matches!(c.default, Some(DefaultValue::Value(Value::Null))) {
            return Err(SqlError::Invalid(format!(
                "column '{}' is NOT NULL but its DEFAULT is NULL",
                c.name
            )));
        }
    }
    let indexes = unique
        .into_iter()
        .map(|set| Index {
            id: 0,
            name: format!(
                "{name}_{}_key",
                set.iter()
                    .map(|&i| columns[i].name.as_str())
                    .collect::<Vec<_>>()
                    .join("_")
            ),
            columns: set,
            unique: true,
        })
        .collect();
    Ok(Plan::CreateTable {
        table: Table {
            id: 0,
            name: name.clone(),
            columns,
            primary_key,
            indexes,
            synced: false,
            merges: false,
        },
        if_not_exists: create.if_not_exists,
    })
}

/// A column definition's type, nullability and DEFAULT, checked.
fn column(def: &ast::ColumnDef) -> Result<Column> {
    let data_type = DataType::from_sql(&def.type_name, def.type_length).ok_or_else(|| {
        let shown = match def.type_length {
            Some(n) => format!("{}({n})", def.type_name),
            None => def.type_name.clone(),
        };
        SqlError::Invalid(format!("unknown type {shown} for column '{}'", def.name))
    })?;
    let default = match &def.default {
        None => None,
        Some(ast::Expr::Function { name: f, args, .. })
            if args.is_empty() && matches!(f.as_str(), "now" | "current_timestamp") =>
        {
            if !matches!(data_type, DataType::Timestamp | DataType::BigInt) {
                return Err(SqlError::Invalid(format!(
                    "DEFAULT now() needs a TIMESTAMP or BIGINT column, '{}' is {data_type}",
                    def.name
                )));
            }
            Some(DefaultValue::Now)
        }
        Some(e) => {
            let v = evaluate_constant(e, "DEFAULT")
                .map_err(|err| SqlError::Invalid(format!("DEFAULT of column '{}': {err}", def.name)))?;
            Some(DefaultValue::Value(coerce(v, data_type, &def.name)?))
        }
    };
    Ok(Column {
        name: def.name.clone(),
        data_type,
        nullable: def.nullable.unwrap_or(true),
        default,
    })
}

/// ALTER TABLE ... ADD COLUMN: rows stored before read the new column as
/// its DEFAULT (or NULL).
pub fn add_column(txn: &Transaction, table: &str, def: &ast::ColumnDef) -> Result<Plan> {
    let t = txn
        .table(table)?
        .ok_or_else(|| SqlError::UnknownTable(table.to_string()))?;
    if t.column_index(&def.name).is_some() {
        return Err(SqlError::Invalid(format!(
            "column '{}' already exists in table '{table}'",
            def.name
        )));
    }
    if def.primary_key {
        return Err(SqlError::Invalid("ADD COLUMN cannot add a PRIMARY KEY column".into()));
    }
    let column = column(def)?;
    if matches!(column.default, Some(DefaultValue::Now)) {
        return Err(SqlError::Invalid(format!(
            "ADD COLUMN '{}' cannot default to now(): existing rows would have no value; add it with a constant DEFAULT",
            def.name
        )));
    }
    Ok(Plan::AddColumn {
        table: table.to_string(),
        column,
        unique: def.unique,
    })
}

pub fn create_index(
    txn: &Transaction,
    name: &str,
    table: &str,
    columns: &[String],
    unique: bool,
    if_not_exists: bool,
) -> Result<Plan> {
    let t = txn
        .table(table)?
        .ok_or_else(|| SqlError::UnknownTable(table.to_string()))?;
    let mut positions = Vec::new();
    for c in columns {
        let i = t
            .column_index(c)
            .ok_or_else(|| SqlError::UnknownColumn(format!("column '{c}' does not exist in table '{table}'")))?;
        if positions.contains(&i) {
            return Err(SqlError::Invalid(format!(
                "column '{c}' appears twice in index '{name}'"
            )));
        }
        positions.push(i);
    }
    Ok(Plan::CreateIndex {
        table: table.to_string(),
        index: Index {
            id: 0,
            name: name.to_string(),
            columns: positions,
            unique,
        },
        if_not_exists,
    })
}
