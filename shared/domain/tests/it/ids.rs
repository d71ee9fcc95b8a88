//! The dry run's tenant (R-F8): a tenant of its own that stands for the real one.

use optisync_domain::TenantId;

#[test]
fn r_f8_a_dry_runs_tenant_is_marked_and_stands_for_the_real_one() {
    let real = TenantId::new("t1");
    let preview = real.preview();
    assert_eq!(preview.as_str(), "t1~preview");
    assert!(preview.is_preview() && !real.is_preview());
    assert_eq!((preview.real(), real.real()), (real.clone(), real));
}
