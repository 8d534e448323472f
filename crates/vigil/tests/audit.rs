//! `vigil audit verify` on a store whose audit log is whole, then edited.

mod common;

use common::{stdout, vigil};
use vigil_model::Timestamp;
use vigil_store::{Grouping, Store};

#[test]
fn verify_passes_a_whole_chain_and_names_the_edited_entry() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = Store::open(dir.path(), Grouping::default()).unwrap();
        for (i, who) in ["ana (responder)", "bob (admin)", "ana (responder)"]
            .iter()
            .enumerate()
        {
            s.audit(
                Timestamp::from_millis(1_700_000_000_000 + i as i64),
                who,
                "incident resolve",
                "inc-1",
                "200",
            )
            .unwrap();
        }
    }
    let d = dir.path().to_str().unwrap();
    let out = vigil(&["audit", "verify", "--data-dir", d]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stdout(&out).starts_with("audit log: 3 entries, chain whole; head: entry 3, "),
        "{}",
        stdout(&out)
    );

    let conn = rusqlite::Connection::open(vigil_store::database_path(dir.path())).unwrap();
    conn.execute_batch(
        "DROP TRIGGER audit_no_update; UPDATE audit SET principal = 'nobody' WHERE seq = 2;",
    )
    .unwrap();
    let out = vigil(&["audit", "verify", "--data-dir", d]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stdout(&out).contains("chain BROKEN at entry 2"),
        "{}",
        stdout(&out)
    );

    let missing = dir.path().join("elsewhere");
    let out = vigil(&["audit", "verify", "--data-dir", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
}
