// Package jobtype holds the small types the public packages and the
// machinery beneath them share: a job as the queue knows it, its last error,
// where it is, and the lifecycle events and progress an application sees.
//
// It exists so that queue (enqueue and admin), runner (middleware) and the
// internal executor and consumer speak of the same Job and Event without
// importing each other, the way River's rivertype does. Applications meet
// these types in queue.Client's results and listings, in runner.Middleware
// and in event subscriptions; they rarely need to build one.
package jobtype
