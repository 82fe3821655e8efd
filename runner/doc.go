// Package runner is iterjob's worker process: it fetches jobs from the
// queue and runs them, iterable jobs with checkpoints, interruption and
// resumption, plain jobs whole.
//
// # Running a worker
//
//	reg := runner.NewRegistry()
//	runner.RegisterIterable(reg, "reindex", Reindex{}, nil)
//	runner.Register(reg, "send_email", SendEmail{}, nil)
//	r, err := runner.New(runner.Config{Redis: rdb, Registry: reg})
//	...
//	err = r.Run(ctx) // until SIGTERM/SIGINT; SIGTSTP quiets
//
// # What happens to an iterable job
//
// A run claims the job's state (cursor, counters) with its lease number,
// calls OnStart on the first run or OnResume on later ones, builds the
// enumerator from the saved cursor and calls EachIteration per item. After
// each item it advances the cursor in memory and checks, with one atomic
// load, whether it must stop. It saves the state at most once per
// CheckpointInterval and whenever the run ends:
//
//   - stop (quiet, shutdown, MaxRuntime, a throttling enumerator): save,
//     OnStop(Interrupted), re-enqueue at the head of its queue. Not a failure:
//     no attempt is used, the job keeps its id and uniqueness key.
//   - error or panic: save the cursor of the last item that succeeded,
//     OnStop(Failed), retry after backoff; the retry resumes at the failed
//     item. After the last attempt the job dies.
//   - cancel (read when the run starts and about once a second while it
//     iterates): save, OnStop(Cancelled), gone; OnComplete does not fire.
//     A job cancelled before its run starts still gets OnStart (first run)
//     or OnResume (later runs), then OnStop(Cancelled), and iterates
//     nothing: its enumerator is not built.
//   - end of the enumeration: save, OnComplete, OnStop(Completed), done.
//
// A run whose lease was taken over (its process was presumed dead) cannot
// save or finish anything: the newer run owns the job. A run of a job
// recovered from a dead process also saves after its 1st, 2nd, 4th... item,
// and its first save forgives the job's recoveries: a job that progresses
// is never taken for a poison pill, however fast its workers die. If Redis
// loses its data while a job runs, the run puts the job and its state back
// and goes on.
//
// # Periodic jobs
//
// Every runner enqueues the due ticks of the namespace's periodic schedules
// (Config.Periodic, added at start, and any added at run time with
// queue.Client.AddPeriodic), together exactly once per tick: a tick is
// claimed in Redis before its job is enqueued under an id derived from the
// tick. Missed ticks are skipped or run once, never in a burst; see
// queue.PeriodicJob.
//
// # Shutdown
//
// The runner follows a shutdown.Controller: Quiet stops fetching and
// interrupts iterable jobs, Stop also waits for plain jobs up to the
// timeout, HardStop cancels job contexts; unfinished jobs go back to their
// queues and iterable ones resume from their last checkpoint.
package runner
