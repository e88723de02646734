//! CREATE/DROP TABLE and INDEX: catalog changes that commit atomically with
//! the data they create or remove.

use crate::sql::error::{Result, SqlError};
use crate::storage::{Column, DefaultValue, Index, Table, Transaction, View};

pub fn create_table(txn: &mut Transaction, mut table: Table, if_not_exists: bool) -> Result<()> {
    if txn.view(&table.name)?.is_some() {
        return Err(SqlError::Invalid(format!(
            "a view named '{}' already exists",
            table.name
        )));
    }
    if txn.table(&table.name)?.is_some() {
        return match if_not_exists {
            true => Ok(()),
            false => Err(SqlError::TableExists(table.name)),
        };
    }
    for index in &table.indexes {
        if txn.index_owner(&index.name)?.is_some() {
            return Err(SqlError::IndexExists(index.name.clone()));
        }
    }
    table.id = txn.next_id()?;
    for index in &mut table.indexes {
        index.id = txn.next_id()?;
    }
    for index in &table.indexes {
        txn.set_index_owner(&index.name, Some(&table.name));
    }
    txn.save_table(&table)?;
    Ok(())
}

pub fn drop_table(txn: &mut Transaction, name: &str, if_exists: bool) -> Result<()> {
    if txn.view(name)?.is_some() {
        return Err(SqlError::Invalid(format!("'{name}' is a view; use DROP VIEW")));
    }
    let Some(table) = txn.table(name)? else {
        return match if_exists {
            true => Ok(()),
            false => Err(SqlError::UnknownTable(name.to_string())),
        };
    };
    for index in &table.indexes {
        txn.set_index_owner(&index.name, None);
        txn.drop_space(&index.space());
    }
    txn.drop_space(&table.space());
    txn.drop_space(&table.feed_space());
    txn.drop_space(&table.tomb_space());
    txn.remove_rowid_counter(&table);
    txn.remove_table(name);
    Ok(())
}

pub fn create_index(txn: &mut Transaction, table: &str, mut index: Index, if_not_exists: bool) -> Result<()> {
    if txn.index_owner(&index.name)?.is_some() {
        return match if_not_exists {
            true => Ok(()),
            false => Err(SqlError::IndexExists(index.name)),
        };
    }
    let mut t = txn
        .table(table)?
        .ok_or_else(|| SqlError::UnknownTable(table.to_string()))?;
    index.id = txn.next_id()?;
    attach_index(txn, &mut t, index)?;
    txn.save_table(&t)?;
    Ok(())
}

/// Fills a new index from the table's rows (refusing duplicates in a UNIQUE
/// one) and adds it to the table; the caller saves the table.
fn attach_index(txn: &mut Transaction, table: &mut Table, index: Index) -> Result<()> {
    if let Some(values) = txn.build_index(table, &index)? {
        return Err(SqlError::DuplicateKey {
            target: format!("unique index '{}' (existing rows)", index.name),
            key: format!(
                "({})",
                values.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(", ")
            ),
        });
    }
    txn.set_index_owner(&index.name, Some(&table.name));
    table.indexes.push(index);
    Ok(())
}

pub fn add_column(txn: &mut Transaction, table: &str, column: Column, unique: bool) -> Result<()> {
    let mut t = txn
        .table(table)?
        .ok_or_else(|| SqlError::UnknownTable(table.to_string()))?;
    let filled = matches!(&column.default, Some(DefaultValue::Value(v)) if !v.is_null());
    if !column.nullable && !filled {
        let everything = (std::ops::Bound::Unbounded, std::ops::Bound::Unbounded);
        if txn.scan_rows(&t, everything)?.next().is_some() {
            return Err(SqlError::Invalid(format!(
                "column '{}' is NOT NULL without a DEFAULT, but table '{table}' has rows",
                column.name
            )));
        }
    }
    let name = column.name.clone();
    t.columns.push(column);
    if unique {
        let index = Index {
            id: txn.next_id()?,
            name: format!("{table}_{name}_key"),
            columns: vec![t.columns.len() - 1],
            unique: true,
        };
        if txn.index_owner(&index.name)?.is_some() {
            return Err(SqlError::IndexExists(index.name));
        }
        attach_index(txn, &mut t, index)?;
    }
    txn.save_table(&t)?;
    Ok(())
}

pub fn create_view(txn: &mut Transaction, view: View, if_not_exists: bool) -> Result<()> {
    if txn.table(&view.name)?.is_some() {
        return Err(SqlError::Invalid(format!(
            "a table named '{}' already exists",
            view.name
        )));
    }
    if txn.view(&view.name)?.is_some() {
        return match if_not_exists {
            true => Ok(()),
            false => Err(SqlError::Invalid(format!("view '{}' already exists", view.name))),
        };
    }
    txn.save_view(&view)?;
    Ok(())
}

pub fn drop_view(txn: &mut Transaction, name: &str, if_exists: bool) -> Result<()> {
    if txn.view(name)?.is_some() {
        txn.remove_view(name);
        return Ok(());
    }
    if txn.table(name)?.is_some() {
        return Err(SqlError::Invalid(format!("'{name}' is a table; use DROP TABLE")));
    }
    match if_exists {
        true => Ok(()),
        false => Err(SqlError::Invalid(format!("view '{name}' does not exist"))),
    }
}

pub fn drop_index(txn: &mut Transaction, name: &str, if_exists: bool) -> Result<()> {
    let Some(owner) = txn.index_owner(name)? else {
        return match if_exists {
            true => Ok(()),
            false => Err(SqlError::UnknownIndex(name.to_string())),
        };
    };
    let mut table = txn.table(&owner)?.ok_or_else(|| {
        SqlError::Storage(crate::storage::StorageError::Corrupt {
            space: "catalog".into(),
            detail: format!("index {name} belongs to missing table {owner}"),
        })
    })?;
    if let Some(pos) = table.indexes.iter().position(|i| i.name == name) {
        let index = table.indexes.remove(pos);
        txn.drop_space(&index.space());
    }
    txn.set_index_owner(name, None);
    txn.save_table(&table)?;
    Ok(())
}
