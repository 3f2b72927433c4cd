//! `shared::lease` against the real KV bucket: one holder at a time, a silent holder replaced
//! within one period, a released lease taken at once, and a replaced holder told it lost.

use std::time::Duration;

use shared::lease::{Lease, Standing};
use test_support::TestEnv;
use tokio::time::{Instant, sleep};

const PERIOD: Duration = Duration::from_millis(800);

fn replica(test: &TestEnv, name: &str) -> Lease {
    Lease::new(
        test.stores.state.clone(),
        format!("{}.test.lease", test.env),
        name.to_owned(),
        PERIOD,
    )
}

fn standby(holder: &str) -> Standing {
    Standing::Standby {
        holder: Some(holder.to_owned()),
    }
}

/// Checks `lease` every eighth of a period until it holds, or panics after `within`.
async fn held_within(lease: &mut Lease, within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        if lease.check().await.unwrap() == Standing::Holder {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "{} never took the lease",
            lease.name()
        );
        sleep(lease.check_every()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_replica_holds_the_lease_while_it_renews_it() {
    let test = TestEnv::new("lease").await;
    let mut a = replica(&test, "a");
    let mut b = replica(&test, "b");
    assert_eq!(a.check().await.unwrap(), Standing::Holder);
    // Three periods of both checking: the holder renews, the other never takes over.
    let until = Instant::now() + PERIOD * 3;
    while Instant::now() < until {
        assert_eq!(a.check().await.unwrap(), Standing::Holder);
        assert_eq!(b.check().await.unwrap(), standby("a"));
        sleep(PERIOD / 8).await;
    }
    test.clean_up().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_holder_is_replaced_within_one_period_and_then_told_it_lost() {
    let test = TestEnv::new("lease").await;
    let mut a = replica(&test, "a");
    let mut b = replica(&test, "b");
    assert_eq!(a.check().await.unwrap(), Standing::Holder);
    assert_eq!(b.check().await.unwrap(), standby("a"));

    // `a` stops renewing (its process hangs): `b` holds within one period of the last renewal.
    let waited = held_within(&mut b, PERIOD * 2).await;
    assert!(waited <= PERIOD, "took over after {waited:?}");
    // `a` comes back: it no longer holds, and says who does.
    assert_eq!(a.check().await.unwrap(), standby("b"));
    test.clean_up().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_released_lease_is_taken_at_the_next_check() {
    let test = TestEnv::new("lease").await;
    let mut a = replica(&test, "a");
    let mut b = replica(&test, "b");
    assert_eq!(a.check().await.unwrap(), Standing::Holder);
    assert_eq!(b.check().await.unwrap(), standby("a"));
    a.release().await;
    assert_eq!(b.check().await.unwrap(), Standing::Holder);
    assert_eq!(a.check().await.unwrap(), standby("b"));
    test.clean_up().await;
}
