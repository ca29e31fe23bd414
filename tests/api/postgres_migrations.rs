//! Several nodes starting at once on one new PostgreSQL database: every one of them comes up, because the
//! migrations run one node at a time. Runs when RSSP_TEST_POSTGRES_URL is set (CI sets it).

use diesel::{Connection, RunQueryDsl};

#[test]
fn nodes_starting_together_on_a_new_database_all_come_up() {
    let Ok(base) = std::env::var("RSSP_TEST_POSTGRES_URL") else { return };
    if base.is_empty() {
        return;
    }
    let name = format!("rssp_test_migr_{}", std::process::id());
    let mut admin = diesel::PgConnection::establish(&base).expect("connect to RSSP_TEST_POSTGRES_URL");
    diesel::sql_query(format!("DROP DATABASE IF EXISTS {name}")).execute(&mut admin).unwrap();
    diesel::sql_query(format!("CREATE DATABASE {name}")).execute(&mut admin).unwrap();
    let (prefix, _) = base.rsplit_once('/').expect("postgres URL with a database name");
    let url = format!("{prefix}/{name}");

    let barrier = std::sync::Arc::new(std::sync::Barrier::new(6));
    let nodes: Vec<_> = (0..6)
        .map(|_| {
            let (url, barrier) = (url.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                rssp::db::connect(&url, 1).map(|_| ()).map_err(|e| e.to_string())
            })
        })
        .collect();
    for node in nodes {
        node.join().expect("no panic").expect("every node opens the database and finds it migrated");
    }
    let pool = rssp::db::connect(&url, 1).expect("and once more");
    drop(pool);
    diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut admin).unwrap();
}
