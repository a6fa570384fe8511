//! Scenarios end to end through `conclave_sim::runner`: real nodes on shaped memory links with
//! crashes, restarts and partitions (and, in the 20-node one, a node tampering with every MPC
//! frame it sends). The trust model says: runs with the tamperer abort and are re-run, every
//! published result is the plaintext one, the tamperer holds no output of a run that
//! published nothing, and a restarted node comes back with its store.

use conclave_sim::runner::{Outcome, RunResult, run};
use conclave_sim::scenario::Scenario;

async fn run_file(name: &str) -> RunResult {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(name);
    let scenario = Scenario::read(&path).unwrap();
    let seed = scenario.seed;
    run(scenario, seed, indicatif::ProgressBar::hidden(), |s| {
        eprintln!("{name}: {s}")
    })
    .await
    .unwrap()
}

/// The restarted node is live again and its store still holds the tasks it sat on.
fn restarted_node_resumed(result: &RunResult, node: usize) {
    assert_eq!(result.resumed.len(), 1, "{:?}", result.events);
    let resumed = &result.resumed[0];
    assert_eq!(resumed.node, node);
    assert!(resumed.live_again_ms.is_some(), "{resumed:?}");
    assert_eq!(resumed.tasks_kept, resumed.tasks_before, "{resumed:?}");
    for event in &result.events {
        assert!(event.error.is_none(), "{event:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_nodes_with_a_partition_never_publish_a_wrong_result() {
    let result = run_file("test-small.toml").await;
    // Every task ends within its deadline: published with the plaintext result, or failed
    // with a reason (a committee that lost its cut-off member and could not be redrawn);
    // never a wrong or a hanging one.
    for task in &result.tasks {
        match task.outcome {
            Outcome::Published => assert_eq!(task.correct, Some(true), "{task:?}"),
            Outcome::Failed => assert!(task.reason.is_some(), "{task:?}"),
            _ => panic!("{task:?}"),
        }
    }
    let published = result
        .tasks
        .iter()
        .filter(|t| t.outcome == Outcome::Published)
        .count();
    assert!(published >= 2, "{:?}", result.tasks);
    assert_eq!(result.events.len(), 2, "{:?}", result.events);
    for event in &result.events {
        assert!(event.error.is_none(), "{event:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "takes 7+ minutes in a debug build and does not pass yet: a committee whose member \
            aborted in preprocessing fails only when its input window ends, so tasks run out of \
            time (issue 15 notes)"]
async fn twenty_nodes_with_a_crash_a_partition_and_a_tamperer() {
    let result = run_file("test-20.toml").await;
    let adversary = result.plan.adversaries.clone();
    assert_eq!(adversary, vec![19]);
    let attempts: Vec<_> = result.tasks.iter().flat_map(|t| &t.attempts).collect();
    let seated: Vec<_> = attempts.iter().filter(|a| a.adversary_member()).collect();
    eprintln!(
        "test-20: {} tasks, {} committee runs, {} with the tamperer",
        result.tasks.len(),
        attempts.len(),
        seated.len()
    );
    // With 20 of 210 coins the tamperer sits on about 38% of all runs: none in ten tasks
    // would mean the draw or this record is broken.
    assert!(!seated.is_empty(), "the tamperer never sat on a committee");
    // Every run the tamperer sat on aborted: nothing it touched was published.
    for a in &seated {
        assert_ne!(
            a.state, "published",
            "a run with the tamperer published: {a:?}"
        );
    }
    for task in &result.tasks {
        // Every published result is the plaintext evaluation of the readings that went in.
        if task.outcome == Outcome::Published {
            assert_eq!(task.correct, Some(true), "{task:?}");
        }
        // A task whose last run had no tamperer published; a run that failed was re-run.
        let last = task.attempts.last().expect("every task ran");
        if !last.adversary_member() {
            assert_eq!(task.outcome, Outcome::Published, "{task:?}");
        }
        for failed in &task.attempts[..task.attempts.len() - 1] {
            assert_eq!(failed.state, "failed", "{task:?}");
        }
    }
    // The tamperer learned no output of a run that published nothing.
    for view in &result.adversary_view {
        assert_eq!(view.outputs_of_unpublished, 0, "{view:?}");
    }
    restarted_node_resumed(&result, 3);
}
