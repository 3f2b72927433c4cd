//! The object-store helpers the transformer (and the loader) rely on, against the real NATS:
//! a read never waits past its deadline, and an object is never replaced.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use shared::ids::Digest;
use shared::nats;
use shared::store::{self, StoreError, Stored};
use test_support::TestEnv;

#[tokio::test]
async fn a_read_whose_chunks_are_purged_under_it_times_out_naming_the_object() {
    let test = TestEnv::new("tfstore").await;
    let name = format!("{}/purged", test.env);
    let object = store::put_object_once(
        &test.stores.curated,
        nats::CURATED_BUCKET,
        &name,
        b"some curated bytes",
        HashMap::new(),
        store::OBJECT_DEADLINE,
    )
    .await
    .unwrap()
    .into_object();
    // What replacing an object does to a reader of the old version (issue 16): its info is still
    // there, its chunks are gone.
    let info = test.stores.curated.info(&name).await.unwrap();
    test.stores
        .js
        .get_stream(format!("OBJ_{}", nats::CURATED_BUCKET))
        .await
        .unwrap()
        .purge()
        .filter(format!("$O.{}.C.{}", nats::CURATED_BUCKET, info.nuid))
        .await
        .unwrap();

    let deadline = Duration::from_secs(2);
    let started = Instant::now();
    let err = store::get_object(&test.stores.curated, &object, 1 << 20, deadline)
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(err, StoreError::Timeout { .. }), "{err}");
    assert!(err.to_string().contains(&name), "{err}");
    assert!(err.failure(1).transient);
    test.clean_up().await;
}

#[tokio::test]
async fn a_write_once_put_leaves_an_existing_object_alone() {
    let test = TestEnv::new("tfstore").await;
    let name = format!("{}/once", test.env);
    let put = |bytes: &'static [u8]| {
        store::put_object_once(
            &test.stores.curated,
            nats::CURATED_BUCKET,
            &name,
            bytes,
            HashMap::new(),
            store::OBJECT_DEADLINE,
        )
    };
    let first = put(b"first").await.unwrap();
    assert!(first.was_written());
    let nuid = test.stores.curated.info(&name).await.unwrap().nuid;

    let second = put(b"second").await.unwrap();
    assert_eq!(second, Stored::Existing(first.object().clone()));
    assert_eq!(second.object().sha256, Digest::of(b"first"));
    assert_eq!(test.stores.curated.info(&name).await.unwrap().nuid, nuid);

    // A content-addressed put of other bytes under the name is refused, not written.
    let err = store::put_object(
        &test.stores.curated,
        nats::CURATED_BUCKET,
        &name,
        b"third",
        HashMap::new(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, StoreError::Occupied { .. }), "{err}");
    test.clean_up().await;
}

#[tokio::test]
async fn a_read_checks_the_announced_digest_and_size() {
    let test = TestEnv::new("tfstore").await;
    let name = format!("{}/checked", test.env);
    let object = store::put_object(
        &test.stores.curated,
        nats::CURATED_BUCKET,
        &name,
        b"twelve bytes",
        HashMap::new(),
    )
    .await
    .unwrap();
    let curated = &test.stores.curated;
    let read = |object| async move {
        store::get_object(curated, &object, 1 << 20, store::OBJECT_DEADLINE).await
    };
    assert_eq!(read(object.clone()).await.unwrap(), b"twelve bytes");

    let other_digest = shared::events::ObjectRef {
        sha256: Digest::of(b"twelve BYTES"),
        ..object.clone()
    };
    let err = read(other_digest).await.unwrap_err();
    assert!(matches!(err, StoreError::DigestMismatch { .. }), "{err}");
    assert!(err.to_string().contains(&name), "{err}");

    let other_size = shared::events::ObjectRef {
        bytes: 13,
        ..object.clone()
    };
    let err = read(other_size).await.unwrap_err();
    assert!(matches!(err, StoreError::SizeMismatch { .. }), "{err}");

    let missing = shared::events::ObjectRef {
        name: format!("{}/nothing", test.env),
        ..object.clone()
    };
    let err = read(missing).await.unwrap_err();
    assert!(matches!(err, StoreError::Missing { .. }), "{err}");
    assert!(err.to_string().contains("/nothing"), "{err}");

    let err = store::get_object(&test.stores.curated, &object, 5, store::OBJECT_DEADLINE)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::TooLarge { .. }), "{err}");
    test.clean_up().await;
}
