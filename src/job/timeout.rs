//! The timeouts of a job (azure-import-export.md §6.1): `Creating` expiry, the `Shipping`
//! notification and closure, and deletion after retention. Time is injected: [`Job::tick`] takes
//! `now` and applies every deadline that has passed at its nominal instant.

use super::drive::DriveState;
use super::model::{ErrorEvent, Job};
use super::{Changes, JobState, Result, TimeoutEvent};
use time::{Duration, OffsetDateTime};

/// A job left in `Creating` this long (since creation or its last update) is deleted (§6.1).
pub const CREATING_TIMEOUT: Duration = Duration::days(14);
/// After this long in `Shipping` with nothing received, operators are notified and the drives
/// become `NeverReceived` (§6.1, §6.2).
pub const SHIPPING_NOTIFY_AFTER: Duration = Duration::days(14);
/// After this long since operators were notified, a job with nothing received is `Closed` (§6.1).
pub const SHIPPING_CLOSE_AFTER: Duration = Duration::days(30);
/// A job this long in `Completed` or `Closed` is deleted (§6.1).
pub const RETENTION: Duration = Duration::days(90);

impl Job {
    /// Apply the timeouts due at `now` (§6.1), each at its nominal deadline so the result does not
    /// depend on how often this is called:
    /// - 14 days in `Creating` since creation or the last update: deleted;
    /// - 14 days in `Shipping` with nothing received: operators notified, drives `NeverReceived`;
    /// - 30 days after that with still nothing received: `Closed`;
    /// - 90 days in `Completed` or `Closed`: deleted.
    ///
    /// With nothing due the job is unchanged and its version is not bumped.
    ///
    /// # Errors
    /// [`JobError::Deleted`](super::JobError::Deleted).
    pub fn tick(&mut self, now: OffsetDateTime) -> Result<Changes> {
        self.apply(now, |txn| {
            loop {
                let book = &txn.job.drivecopy;
                let state = txn.state();
                let nothing_received = !txn.job.any_drive_arrived();
                if state == JobState::Creating && now >= book.creating_timer_from + CREATING_TIMEOUT
                {
                    txn.now = book.creating_timer_from + CREATING_TIMEOUT;
                    let mut drives_to_return: Vec<String> = book
                        .drives
                        .iter()
                        .filter(|(_, b)| b.arrived_early_at.is_some())
                        .map(|(id, _)| id.clone())
                        .collect();
                    drives_to_return.extend(
                        book.extra_drives
                            .iter()
                            .filter(|e| !e.shipped_back)
                            .map(|e| e.drive_id.clone()),
                    );
                    txn.job.drivecopy.deleted_at = Some(txn.now);
                    txn.changes
                        .timeouts
                        .push(TimeoutEvent::Deleted { drives_to_return });
                    break;
                } else if state == JobState::Shipping
                    && nothing_received
                    && book.operators_notified_at.is_none()
                    && now >= book.state_entered_at + SHIPPING_NOTIFY_AFTER
                {
                    txn.now = book.state_entered_at + SHIPPING_NOTIFY_AFTER;
                    txn.job.drivecopy.operators_notified_at = Some(txn.now);
                    let specified: Vec<usize> = (0..txn.job.properties.drive_list.len())
                        .filter(|&i| {
                            txn.job.properties.drive_list[i].state == DriveState::Specified
                        })
                        .collect();
                    let never_received = specified
                        .iter()
                        .map(|&i| txn.job.properties.drive_list[i].drive_id.clone())
                        .collect();
                    for index in specified {
                        txn.set_drive(index, DriveState::NeverReceived);
                    }
                    txn.changes
                        .timeouts
                        .push(TimeoutEvent::OperatorsNotified { never_received });
                } else if let (JobState::Shipping, true, Some(notified)) =
                    (state, nothing_received, book.operators_notified_at)
                {
                    if now < notified + SHIPPING_CLOSE_AFTER {
                        break;
                    }
                    txn.now = notified + SHIPPING_CLOSE_AFTER;
                    txn.record_error(ErrorEvent::ShippingTimeout { at: txn.now });
                    txn.set_job(JobState::Closed);
                    txn.changes.timeouts.push(TimeoutEvent::Closed);
                } else if matches!(state, JobState::Completed | JobState::Closed)
                    && now >= book.state_entered_at + RETENTION
                {
                    let drives_to_return = book
                        .extra_drives
                        .iter()
                        .filter(|e| !e.shipped_back)
                        .map(|e| e.drive_id.clone())
                        .collect();
                    txn.now = book.state_entered_at + RETENTION;
                    txn.job.drivecopy.deleted_at = Some(txn.now);
                    txn.changes
                        .timeouts
                        .push(TimeoutEvent::Deleted { drives_to_return });
                    break;
                } else {
                    break;
                }
            }
            txn.commit = !txn.changes.timeouts.is_empty();
            Ok(())
        })
    }
}
