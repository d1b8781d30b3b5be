//! Property tests of the job state machines: random event sequences never leave the documented
//! graphs ([`JobState::exits`], [`DriveState::exits`]) and never break an invariant.

use super::fixtures::*;
use super::*;
use proptest::prelude::*;
use time::Duration;

const DRIVES: [&str; 4] = ["D1", "D2", "D3", "XTRA"];

#[derive(Debug, Clone)]
enum Event {
    Ship {
        with_package: bool,
        with_address: bool,
    },
    Cancel,
    CancelFalse,
    Receive(Vec<usize>),
    Start(usize),
    Progress(usize, u8, u64, Option<u64>),
    Finish(usize, usize),
    Fault,
    Resolve,
    FaultDrive(usize),
    ResolveDrive(usize),
    ShipBack,
    Delete,
    Tick(i64),
}

const STATUSES: [CopyStatus; 4] = [
    CopyStatus::Completed,
    CopyStatus::CompletedWithWarnings,
    CopyStatus::CompletedWithErrors,
    CopyStatus::BitLockerKeyInvalid,
];

fn event() -> impl Strategy<Value = Event> {
    let drive = 0..DRIVES.len();
    prop_oneof![
        (any::<bool>(), any::<bool>()).prop_map(|(p, a)| Event::Ship {
            with_package: p,
            with_address: a
        }),
        Just(Event::Cancel),
        Just(Event::CancelFalse),
        proptest::collection::vec(0..DRIVES.len(), 0..4).prop_map(Event::Receive),
        drive.clone().prop_map(Event::Start),
        (
            drive.clone(),
            0u8..=110,
            0u64..1000,
            proptest::option::of(0u64..1000)
        )
            .prop_map(|(d, p, b, t)| Event::Progress(d, p, b, t)),
        (drive.clone(), 0..STATUSES.len()).prop_map(|(d, s)| Event::Finish(d, s)),
        Just(Event::Fault),
        Just(Event::Resolve),
        drive.clone().prop_map(Event::FaultDrive),
        drive.prop_map(Event::ResolveDrive),
        Just(Event::ShipBack),
        Just(Event::Delete),
        (0i64..50).prop_map(Event::Tick),
    ]
}

fn apply(job: &mut Job, event: &Event, clock: &mut FakeClock) -> Result<Changes> {
    let now = clock.advance(Duration::hours(1));
    match event {
        Event::Ship {
            with_package,
            with_address,
        } => {
            let mut update = ship_update();
            if !with_package {
                update.properties.delivery_package = None;
            }
            if !with_address {
                update.properties.return_address = None;
            }
            job.update(update, now)
        }
        Event::Cancel => job.update(cancel_update(), now),
        Event::CancelFalse => {
            let mut update = UpdateJobParameters::default();
            update.properties.cancel_requested = Some(false);
            job.update(update, now)
        }
        Event::Receive(drives) => {
            let ids: Vec<&str> = drives.iter().map(|&i| DRIVES[i]).collect();
            job.receive_drives(&ids, now)
        }
        Event::Start(d) => job.start_copy(DRIVES[*d], now),
        Event::Progress(d, p, b, t) => job.record_progress(DRIVES[*d], *p, *b, *t, now),
        Event::Finish(d, s) => {
            job.finish_copy(DRIVES[*d], CopyOutcome::new(STATUSES[*s].clone()), now)
        }
        Event::Fault => job.fault("operator hold", now),
        Event::Resolve => job.resolve(now),
        Event::FaultDrive(d) => job.fault_drive(DRIVES[*d], "drive problem", now),
        Event::ResolveDrive(d) => job.resolve_drive(DRIVES[*d], now),
        Event::ShipBack => job.ship_back(return_package(), now),
        Event::Delete => job.delete(now),
        Event::Tick(days) => job.tick(clock.advance(Duration::days(*days))),
    }
}

/// The invariants every reachable job satisfies.
fn check_invariants(job: &Job) -> std::result::Result<(), TestCaseError> {
    let p = &job.properties;
    prop_assert!(p.percent_complete <= 100);
    prop_assert!(p.drive_list.len() <= 10);
    for drive in &p.drive_list {
        prop_assert!(drive.percent_complete <= 100);
        if drive.state == DriveState::Transferring {
            prop_assert!(
                matches!(p.state, JobState::Transferring | JobState::Faulted),
                "drive copying while the job is {}",
                p.state
            );
        }
        if matches!(
            p.state,
            JobState::Packaging | JobState::Closed | JobState::Completed
        ) {
            prop_assert!(drive.state != DriveState::Transferring);
        }
    }
    match p.state {
        JobState::Completed => {
            prop_assert!(!job.has_errors(), "Completed with errors");
            // Every drive went back, except drives of a cancelled job that never arrived.
            let accounted = p.drive_list.iter().all(|d| {
                d.state == DriveState::ShippedBack
                    || (p.cancel_requested
                        && matches!(d.state, DriveState::Specified | DriveState::NeverReceived))
            });
            prop_assert!(accounted, "Completed with drives not shipped back");
        }
        JobState::Closed => prop_assert!(job.has_errors(), "Closed without errors"),
        JobState::Faulted => prop_assert!(job.drivecopy.fault.is_some()),
        JobState::Received | JobState::Transferring | JobState::Packaging => {
            prop_assert!(p
                .drive_list
                .iter()
                .all(|d| d.state != DriveState::Specified));
        }
        JobState::Creating | JobState::Shipping => {}
    }
    Ok(())
}

/// Every change of `changes` follows the graphs, and they chain from `before` to `after`.
fn check_changes(
    before: &Job,
    after: &Job,
    changes: &Changes,
) -> std::result::Result<(), TestCaseError> {
    let mut state = before.properties.state;
    let mut drives: std::collections::BTreeMap<String, DriveState> = before
        .properties
        .drive_list
        .iter()
        .map(|d| (d.drive_id.clone(), d.state))
        .collect();
    for change in &changes.transitions {
        match change {
            Change::Job { from, to } => {
                prop_assert_eq!(*from, state);
                prop_assert!(
                    from.exits().contains(to),
                    "job {} -> {} not documented",
                    from,
                    to
                );
                state = *to;
            }
            Change::Drive {
                drive_id,
                from: Some(from),
                to,
            } => {
                prop_assert_eq!(drives.get(drive_id), Some(from));
                prop_assert!(
                    from.exits().contains(to),
                    "drive {} -> {} not documented",
                    from,
                    to
                );
                drives.insert(drive_id.clone(), *to);
            }
            Change::Drive {
                drive_id,
                from: None,
                to,
            } => {
                prop_assert_eq!(after.properties.job_type, JobType::Export);
                prop_assert_eq!(*to, DriveState::Received);
                prop_assert!(drives.insert(drive_id.clone(), *to).is_none());
            }
        }
    }
    prop_assert_eq!(state, after.properties.state);
    for drive in &after.properties.drive_list {
        prop_assert_eq!(drives.get(&drive.drive_id), Some(&drive.state));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_event_sequences_stay_on_the_documented_graph(
        drive_count in 0usize..=3,
        events in proptest::collection::vec(event(), 1..60),
    ) {
        let mut clock = FakeClock::new();
        let mut job = if drive_count == 0 {
            Job::create("e", &scope(), put_export(), clock.now()).expect("valid export job")
        } else {
            import_job(&DRIVES[..drive_count], &clock)
        };
        check_invariants(&job)?;
        for event in &events {
            let before = job.clone();
            let result = apply(&mut job, event, &mut clock);
            match result {
                Err(error) => {
                    prop_assert_eq!(&job, &before, "a refused {:?} changed the job", event);
                    if before.is_deleted() {
                        let deleted = matches!(error, JobError::Deleted { .. });
                        prop_assert!(deleted, "deleted job refused with {:?}", error);
                    }
                }
                Ok(changes) => {
                    prop_assert!(!before.is_deleted(), "{:?} succeeded on a deleted job", event);
                    let idle_tick = matches!(event, Event::Tick(_)) && changes.timeouts.is_empty();
                    let expected = before.drivecopy.version + u64::from(!idle_tick);
                    prop_assert_eq!(job.drivecopy.version, expected);
                    prop_assert_eq!(changes.version, expected);
                    check_changes(&before, &job, &changes)?;
                }
            }
            check_invariants(&job)?;
        }
    }
}
