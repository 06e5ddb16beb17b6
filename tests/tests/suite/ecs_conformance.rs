//! The conformance suite against the `ecs` plugin through its dynamic
//! library, against moto (ECS, CloudWatch Logs) with task states driven
//! by moto's state manager.

use std::sync::OnceLock;

use polysync_conformance::{Target, artifacts, conformance_suite};
use polysync_tests::ecs::EcsWorld;

fn world() -> &'static EcsWorld {
    static WORLD: OnceLock<EcsWorld> = OnceLock::new();
    WORLD.get_or_init(|| EcsWorld::start("conformance", 12))
}

fn target() -> Target {
    let mut target = Target::new(
        "ecs",
        artifacts::cdylib("polysync-provider-ecs"),
        world().settings(),
        ("quick", &[("GREETING", "hi")]),
        ("long", &[("SLEEP_SECONDS", "100000")]),
    )
    // quick, long, plain, reporter, counter and 12 report families.
    .expect_entries(17)
    .monitor_url("https://eu-west-1.console.aws.amazon.com/ecs/v2/task-definitions/quick?region=eu-west-1")
    .no_quick_logs("moto runs no container, so CloudWatch Logs has no stream; ecs_e2e reads streams the test writes")
    .quick_events("STOPPED");
    // moto ignores maxResults for ECS, so pages here are one page; paging
    // itself is proven against the project's paging stub (ecs_e2e).
    target.page_size = 100;
    target
}

conformance_suite!(target());
