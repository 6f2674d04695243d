//! Pruning, written once for both engines: the statements that delete
//! what is past its retention, in the order they run, in one transaction.

use super::dialect::{Arg, Dialect, Statement};
use super::{policy, Retention, Status};

/// Deletes deliveries in `status` last updated more than `age_ms` ago,
/// after their attempts. The second statement's count is how many
/// deliveries went.
pub fn delete_older(dialect: Dialect, status: Status, age_ms: i64) -> [Statement; 2] {
    let now = dialect.now();
    let mut attempts = Statement::new(dialect, "DELETE FROM attempts WHERE delivery_id IN (SELECT id FROM deliveries");
    attempts
        .push(" WHERE status = {}", Arg::Text(status.as_str().to_owned()))
        .push(&format!(" AND updated_at < {now} - {{}})"), Arg::Int(age_ms));
    let mut deliveries = Statement::new(dialect, "DELETE FROM deliveries");
    deliveries
        .push(" WHERE status = {}", Arg::Text(status.as_str().to_owned()))
        .push(&format!(" AND updated_at < {now} - {{}}"), Arg::Int(age_ms));
    [attempts, deliveries]
}

/// What [`crate::store::Store::prune`] deletes, in order; the count of the
/// statement at [`PRUNED_DELIVERIES`] is how many deliveries went.
pub fn prune(dialect: Dialect, retention: &Retention) -> Vec<Statement> {
    let now = dialect.now();
    let one = |sql: &str, arg: Arg| {
        let mut statement = Statement::new(dialect, "");
        statement.push(sql, arg);
        statement
    };
    let deliveries = policy::millis(retention.deliveries);
    let history = policy::millis(retention.history);
    let recount = match dialect {
        Dialect::Sqlite => policy::RECOUNT_HISTORIES_SQLITE,
        Dialect::Postgres => policy::RECOUNT_HISTORIES_POSTGRES,
    };
    let mut recount = Statement::new(dialect, recount);
    recount.args.push(Arg::Int(history));
    let mut flows = Statement::new(dialect, "DELETE FROM flows");
    flows
        .push(&format!(" WHERE received_at < {now} - {{}}"), Arg::Int(history))
        .push(" AND event_id < {}", Arg::Text(policy::flow_id_bound(retention.history)));
    let [attempts, delivered] = delete_older(dialect, Status::Delivered, deliveries);
    vec![
        one(
            &format!("DELETE FROM revoked_sessions WHERE issued_at < {now} - {{}}"),
            Arg::Int(policy::millis(retention.sessions)),
        ),
        attempts,
        delivered,
        one(
            &format!(
                "DELETE FROM events WHERE received_at < {now} - {{}} \
                 AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = events.id)"
            ),
            Arg::Int(deliveries),
        ),
        one(
            &format!("DELETE FROM dedup WHERE received_at < {now} - {{}}"),
            Arg::Int(policy::millis(retention.dedup_window)),
        ),
        recount,
        flows,
        Statement::new(dialect, "DELETE FROM customer_histories WHERE flows = 0"),
        one(
            &format!(
                "DELETE FROM digest_windows WHERE window_end < {now} - {{}} AND window_end < \
                 (SELECT MAX(w.window_end) FROM digest_windows w WHERE w.digest = digest_windows.digest)"
            ),
            Arg::Int(history),
        ),
    ]
}

/// Where in [`prune`] the delivered deliveries are deleted.
pub const PRUNED_DELIVERIES: usize = 2;
