//! Adding access-list entries is resent when the answer is lost, and Atlas answers the resend
//! with 409 DUPLICATE_ACCESS_LIST_ENTRY: the entries are there, so the call succeeded (found
//! by the soak, scripts/soak.sh: issuances failed with a 400 after a lost answer).

use std::time::Duration;

use vault_mongodbatlas::atlas::{AccessListEntry, AtlasClient, ClientConfig, RetryPolicy};
use vault_mongodbatlas::sim::{FaultRule, SimConfig, SimHandle, Simulator};

async fn sim() -> SimHandle {
    let cfg = SimConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        ..SimConfig::default()
    };
    Simulator::start(cfg).await.expect("simulator")
}

fn client(sim: &SimHandle) -> AtlasClient {
    let retry = RetryPolicy {
        max_attempts: 4,
        min_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
        jitter: false,
    };
    AtlasClient::new(
        ClientConfig::new(sim.public_key.clone(), sim.private_key.clone())
            .with_base_url(sim.base_url.clone())
            .with_vault_version("1.21.4")
            .with_retry(retry),
    )
    .expect("client")
}

const ACCESS_LIST: &str = "/apiKeys/[0-9a-f]+/accessList$";

#[tokio::test]
async fn a_lost_access_list_answer_is_not_a_failure() {
    let sim = sim().await;
    let c = client(&sim);
    let key = c
        .create_org_key(&sim.org_id, "vault-acl-lost-answer", &["ORG_MEMBER".into()])
        .await
        .expect("create");
    let entries: Vec<AccessListEntry> = ["192.0.2.7", "198.51.100.0/24"]
        .iter()
        .map(|s| s.parse().expect("entry"))
        .collect();
    // Atlas adds the entries, but the answer never arrives; the resend meets them.
    sim.add_fault(FaultRule::reset_after(Some("POST"), ACCESS_LIST).times(1))
        .expect("fault");
    c.add_access_list(&sim.org_id, &key.id, &entries)
        .await
        .expect("the entries are on the list, as asked");
    assert_eq!(
        sim.stats().faults_fired,
        1,
        "the first answer was really lost"
    );
    let listed = c
        .list_access_list(&sim.org_id, &key.id)
        .await
        .expect("list");
    assert_eq!(listed.len(), 2, "{listed:?}");
    sim.shutdown().await;
}

#[tokio::test]
async fn a_duplicate_that_is_not_ours_still_fails() {
    let sim = sim().await;
    let c = client(&sim);
    let key = c
        .create_org_key(&sim.org_id, "vault-acl-duplicate", &["ORG_MEMBER".into()])
        .await
        .expect("create");
    let first: AccessListEntry = "192.0.2.7".parse().expect("entry");
    let second: AccessListEntry = "203.0.113.9".parse().expect("entry");
    c.add_access_list(&sim.org_id, &key.id, std::slice::from_ref(&first))
        .await
        .expect("first add");
    // One entry already there, the other not: Atlas refuses the whole request (nothing added),
    // so the call must fail rather than pretend the second entry was added.
    let err = c
        .add_access_list(&sim.org_id, &key.id, &[first, second])
        .await
        .expect_err("refused");
    assert_eq!(
        err.error_code(),
        Some("DUPLICATE_ACCESS_LIST_ENTRY"),
        "{err:?}"
    );
    sim.shutdown().await;
}
