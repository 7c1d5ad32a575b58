//! CIB operation requests (and replies) from untrusted bytes: decoding must
//! never panic; a decoded request or reply must survive an encode/decode
//! round trip unchanged, and a request must run against a small CIB without
//! panicking (errors are fine, but must leave the CIB unchanged).
#![no_main]

use libfuzzer_sys::fuzz_target;
use phalanx_cib::ops::{Reply, execute, wire};
use phalanx_cib::xml::parse;

const CIB: &str = r#"<cib crm_feature_set="3.16.1" validate-with="pacemaker-3.9" epoch="3" num_updates="1" admin_epoch="0"><configuration><crm_config><cluster_property_set id="o"><nvpair id="o-acl" name="enable-acl" value="true"/></cluster_property_set></crm_config><nodes><node id="1" uname="n1"/></nodes><resources><primitive id="p" class="ocf" provider="heartbeat" type="Dummy"><meta_attributes id="p-m"><nvpair id="p-m-t" name="target-role" value="Started"/></meta_attributes></primitive></resources><constraints/><acls><acl_target id="u"><role id="r"/></acl_target><acl_role id="r"><acl_permission id="r1" kind="read" xpath="/cib"/><acl_permission id="r2" kind="write" object-type="primitive"/><acl_permission id="r3" kind="deny" reference="p-m"/></acl_role></acls></configuration><status/></cib>"#;

fuzz_target!(|data: &[u8]| {
    if let Ok(reply) = Reply::decode(data) {
        assert_eq!(Reply::decode(reply.encode().as_bytes()).ok(), Some(reply));
    }
    let Ok((op, ctx)) = wire::decode(data) else {
        return;
    };
    let again = wire::encode(&op, &ctx);
    assert_eq!(
        wire::decode(again.as_bytes()).ok(),
        Some((op.clone(), ctx.clone())),
        "round trip changed the request"
    );
    let mut cib = parse(CIB).expect("fixed CIB parses");
    let before = cib.clone();
    if execute(&mut cib, &op, &ctx).is_err() {
        assert_eq!(cib, before, "a failed operation changed the CIB");
    }
});
