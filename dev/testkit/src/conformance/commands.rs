//! Conformance cases: the command feed and the connector's results.

use super::*;

/// Commands are appended once per id, numbered from 1 per tenant, and paged by sequence number.
pub async fn commands_are_appended_once_in_sequence_and_paged(store: Arc<dyn StateStore>) {
    for batch in [vec![1, 2, 3], vec![3, 4], vec![1], (5..=30).collect()] {
        let commit = Commit {
            writes: vec![],
            commands: batch.into_iter().map(end_command).collect(),
            audit: vec![],
            ..Default::default()
        };
        store.commit(&tenant(), commit).await.unwrap();
    }
    let mut seen = Vec::new();
    let mut after = 0;
    loop {
        let page = store.commands(&tenant(), after, 7).await.unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 7);
        after = page.last().unwrap().0;
        seen.extend(page);
    }
    assert_eq!(seen.iter().map(|(s, _)| *s).collect::<Vec<_>>(), (1..=30).collect::<Vec<u64>>());
    assert_eq!(
        seen.iter().map(|(_, c)| c.id().to_string()).collect::<Vec<_>>(),
        (1..=30).map(|n| format!("end-{n}")).collect::<Vec<_>>()
    );
    assert!(store.commands(&TenantId::new("other"), 0, 10).await.unwrap().is_empty());
    // Feeds are per tenant: the same command id in another tenant's feed is another command.
    let other = TenantId::new("other");
    store
        .commit(&other, Commit { writes: vec![], commands: vec![end_command(1)], audit: vec![], ..Default::default() })
        .await
        .unwrap();
    assert_eq!(store.commands(&other, 0, 10).await.unwrap().len(), 1);
}

/// A command is found by id per tenant; its result is recorded, a `done` result is final, and a command
/// that is not in the feed has no result.
pub async fn command_results_are_recorded_once_done(store: Arc<dyn StateStore>) {
    let commit =
        Commit { writes: vec![], commands: vec![end_command(1), end_command(2)], audit: vec![], ..Default::default() };
    store.commit(&tenant(), commit).await.unwrap();
    let id = CommandId::new("end-2");
    let (seq, command) = store.command(&tenant(), &id).await.unwrap().expect("in the feed");
    assert_eq!((seq, command.id()), (2, &id));
    assert_eq!(store.command(&TenantId::new("other"), &id).await.unwrap(), None, "feeds are per tenant");
    assert_eq!(store.command(&tenant(), &CommandId::new("end-9")).await.unwrap(), None);
    assert_eq!(store.command_result(&tenant(), &id).await.unwrap(), None);

    let failed = CommandResult::Failed { reason: "assignment locked".into() };
    store.record_result(&tenant(), &id, &failed).await.unwrap();
    assert_eq!(store.command_result(&tenant(), &id).await.unwrap(), Some(failed.clone()));
    let done = CommandResult::Done {
        assignment: Some(AssignmentId::new("a-7")),
        person: Some(PersonId::new("p-7")),
        suggestions: vec![Candidate {
            person: PersonId::new("p-7"),
            first_name: Some(PersonalText::new("Max")),
            last_name: None,
            emails: vec![email(7)],
        }],
    };
    store.record_result(&tenant(), &id, &done).await.unwrap();
    store.record_result(&tenant(), &id, &failed).await.unwrap();
    assert_eq!(store.command_result(&tenant(), &id).await.unwrap(), Some(done), "done is final");
    assert!(store.record_result(&tenant(), &CommandId::new("end-9"), &failed).await.is_err());
    assert_eq!(store.command_result(&tenant(), &CommandId::new("end-9")).await.unwrap(), None);
    assert_eq!(store.command_result(&tenant(), &CommandId::new("end-1")).await.unwrap(), None);
}
