// Package prune owns the deletion of data tokend no longer needs: expired
// and revoked sessions, spent one-time tokens and challenges, dead mail,
// idle throttle counters and audit events past their retention.
//
// Each kind of data is a Pruner: a table, its primary key, an indexed time
// column and the age past which a row goes. A Runner holds the list, and on
// its schedule one instance (the holder of a lease row) deletes each kind in
// small batches, pausing between them, until nothing is left — so that a
// large backlog is worked off in many short transactions that traffic does
// not feel, instead of one long one that scans whole tables. New kinds join
// by registering a Pruner; nothing else changes.
package prune
