package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
)

// Checkpoints. In WAL mode every commit appends pages to the WAL and a
// checkpoint copies them back into the database file; the WAL restarts
// from its beginning (instead of growing) only when a write transaction
// begins while every frame has been copied back and no reader still
// uses one. SQLite's default has the committing connection checkpoint,
// inside COMMIT, whenever the WAL passes 1,000 pages: the batch that
// crosses it, and every caller waiting on it, waits for the copy and its
// fsyncs. Here no checkpoint runs inside a COMMIT the callers wait for:
//
//   - A connection of its own checkpoints PASSIVE-ly beside the writer:
//     woken by the committer whenever the WAL has grown by walCkptBytes
//     since the last wake-up, and by a tick (checkpointEvery) for the
//     pages of writes that stopped or trickle. A PASSIVE checkpoint takes
//     no lock a writer or reader waits for, so it copies the bulk of the
//     WAL while batches go on committing. The tick runs no pass while
//     the WAL grows fast (more than walCkptBytes/walCatchUpShare since
//     the last tick, or since it restarted if it did in between: the
//     tick after each restart ran one, a third of the passes under the
//     load tool, session 15): such a pass, in the middle of a cycle,
//     copied the hot pages once more for nothing (the server under
//     load, one CPU, 1.5 passes per cycle), since the cycle's own pass
//     copies them again.
//   - It cannot let the WAL restart under sustained writes: by the time
//     it has copied the WAL, batches have appended more. So when it ends
//     with the WAL past walCkptBytes it asks the committer to finish the
//     job (catchUp): between two batches, after the first's callers are
//     answered (store.WithAfterBatch), the write connection checkpoints
//     PASSIVE-ly the few frames appended meanwhile; nothing can append
//     while it does, so it copies every frame, and the next batch's first
//     write restarts the WAL. The pause is that small copy and the
//     database file's fsync (the WAL's is skipped: the COMMIT before
//     synced it, see walSync), between batches, not inside one.
//   - Both yield the CPU every ckptYieldEvery while they copy (walvfs.go):
//     with GOMAXPROCS=1 a pass otherwise kept the one P from every
//     request for ~10 ms at a time, until the scheduler preempted it.
//   - If the WAL reaches walForceBytes anyway (the background connection
//     starved of CPU, or failing), the committer catches up on its own
//     between batches: the WAL stays bounded by about walForceBytes plus
//     one batch, whoever is scheduled.
//   - A reader that holds a snapshot keeps the frames it reads from being
//     copied, and the WAL from restarting; both are tried again later.
//     The write connection's wal_autocheckpoint (walSafetyBytes, inside
//     COMMIT) remains as the last resort, past walForceBytes.
//
// A page every action touches (a tenant's index leaf, a rollup row) is
// copied once per checkpoint, not once per commit, so the cycle is kept
// long enough (walCkptBytes of WAL) that copying costs little per action,
// and short enough that the WAL (128–256 MiB) stays in the page cache:
// at 100 tenants a 32 MiB cycle copied 1.06 pages per action, 64 MiB 0.70
// (BenchmarkActionWritePath); with the server's smaller batches (its
// work=250µs variant, one CPU) 64 MiB copied 0.98 and 128 MiB 0.67, and
// restarted the WAL half as often: half the pauses between batches.
// Those pauses are the p99's largest single cause under the load test
// (docs/benchmarks.md, "tail2"): each catch-up's fsync of the database
// file took 25–50 ms on the test VM, every ~1 s at 128 MiB, while all
// 16 clients waited; 256 MiB halves how often (the WAL stays under
// ~520 MiB), and copies fewer pages per action.
// Durability is SQLite's: a checkpoint syncs the WAL before copying and
// the database after, and the WAL restarts only over copied frames.
const (
	checkpointEvery = time.Second
	// walCkptBytes is the WAL growth that wakes the checkpointer, and the
	// extent past which it asks the committer to let the WAL restart.
	walCkptBytes = 256 << 20
	// walForceBytes is the extent at which the committer checkpoints
	// between batches whether or not the checkpointer asked.
	walForceBytes = 2 * walCkptBytes
	// The checkpointer leaves the committer at most 1/walCatchUpShare of
	// walCkptBytes (8 MiB) to copy, if walPasses passes can get it there:
	// batches keep appending while a pass runs, a second pass copies only
	// those frames, and so on.
	walCatchUpShare = 16
	walPasses       = 3
	// walSafetyBytes is where the write connection's wal_autocheckpoint
	// acts: only if the WAL outgrows walForceBytes (walSafetyPages).
	walSafetyBytes = walForceBytes * 5 / 4
)

// walSafetyPages is wal_autocheckpoint, which SQLite counts in pages, for
// a database of pages of size bytes: walSafetyBytes of frames (a page and
// a 24-byte header each). The thresholds above stay in bytes whatever the
// page size: they bound the WAL's disk and page-cache footprint, and with
// smaller pages each action writes fewer bytes, so the WAL restarts less
// often for the same load.
func walSafetyPages(size int) int {
	return int(walSafetyBytes / int64(size+24))
}

// walCkpt is the state the committer and the checkpointer share.
type walCkpt struct {
	name string // the WAL's path as SQLite names it (walState)
	// The thresholds: walCkptBytes and walForceBytes but in tests.
	ckptBytes, forceBytes int64
	wake                  chan struct{} // the committer wakes the checkpointer (cap 1)
	// catchUp is set by the checkpointer when it has copied a WAL past
	// walCkptBytes, for the committer to copy the rest and restart it.
	catchUp atomic.Bool
	// The committer's own: the extent at the last wake-up, the extent
	// after the last batch (a smaller one means the WAL restarted), and
	// the extent from which a forced catch-up is tried again after one
	// that copied everything but did not restart the WAL (a reader).
	woke, last, forceAt int64
	catchUps            atomic.Int64 // checkpoints the committer ran
	passes              atomic.Int64 // checkpoints the background connection ran
	// How long they took, in total and the longest: the pauses between
	// two batches they make.
	catchUpNanos, catchUpMax atomic.Int64
	// catchUpObs, if set, is told each one's duration (tests).
	catchUpObs func(time.Duration)
}

// WALStats reports the write-ahead log's checkpointing so far.
type WALStats struct {
	Bytes    int64 // the WAL's extent now
	Restarts int64 // times it restarted from its beginning
	CatchUps int64 // checkpoints the committer ran between batches
	Passes   int64 // checkpoints the background connection ran
	// CatchUpTime is how long they took in total, CatchUpMax the longest
	// (pauses between two batches).
	CatchUpTime, CatchUpMax time.Duration
	// The I/O of the write and checkpoint connections (the readers' is
	// not counted): write(2) calls to the database file (checkpoints'
	// copies, combined when pages follow each other) and the bytes they
	// wrote, read(2) calls on the WAL (checkpoints reading frames, the
	// write connection reading pages back), syncs of the database file
	// and of the WAL.
	DBWrites, DBBytes, WALReads, DBSyncs, WALSyncs int64
}

// WALStats returns the WAL's state; zero if checkpoints are off.
func (db *DB) WALStats() WALStats {
	if db.wal == nil {
		return WALStats{}
	}
	ext, restarts, _ := walState(db.wal.name)
	s := WALStats{Bytes: ext, Restarts: restarts, CatchUps: db.wal.catchUps.Load(), Passes: db.wal.passes.Load(),
		CatchUpTime: time.Duration(db.wal.catchUpNanos.Load()), CatchUpMax: time.Duration(db.wal.catchUpMax.Load())}
	s.DBWrites, s.DBBytes, s.WALReads, s.DBSyncs, s.WALSyncs = walIOStats(strings.TrimSuffix(db.wal.name, "-wal"))
	return s
}

// walPath returns SQLite's name of the write connection's WAL.
func (db *DB) walPath(ctx context.Context) (string, error) {
	rows, err := db.w.QueryContext(ctx, `PRAGMA database_list`)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			seq        int
			name, file string
		)
		if err := rows.Scan(&seq, &name, &file); err != nil {
			return "", err
		}
		if name == "main" {
			return file + "-wal", rows.Err()
		}
	}
	if err := rows.Err(); err != nil {
		return "", err
	}
	return "", fmt.Errorf("no main database")
}

// afterBatch runs on the committer goroutine between batches (see the
// comment at the top).
func (db *DB) afterBatch() {
	w := db.wal
	ext, _, ok := walState(w.name)
	if !ok {
		return
	}
	if ext < w.last { // restarted
		w.woke, w.forceAt = 0, 0
	}
	w.last = ext
	switch {
	case w.catchUp.Swap(false) && ext >= w.ckptBytes:
		db.walCatchUp()
	case ext >= w.forceBytes && ext >= w.forceAt:
		if db.walCatchUp() {
			w.forceAt = ext + w.ckptBytes
		}
	case ext-w.woke >= w.ckptBytes:
		w.woke = ext
		select {
		case w.wake <- struct{}{}:
		default: // it is awake already
		}
	}
}

// walCatchUp checkpoints on the write connection, PASSIVE-ly, and reports
// whether every frame of the WAL is now copied (the next write restarts
// it unless a reader holds it).
func (db *DB) walCatchUp() bool {
	w := db.wal
	w.catchUps.Add(1)
	start := time.Now()
	defer func() {
		d := time.Since(start)
		w.catchUpNanos.Add(int64(d))
		if int64(d) > w.catchUpMax.Load() {
			w.catchUpMax.Store(int64(d)) // only the committer stores
		}
		if w.catchUpObs != nil {
			w.catchUpObs(d)
		}
	}()
	var busy, log, done int64
	walYielding(w.name, true)
	defer walYielding(w.name, false)
	if err := db.w.QueryRow(`PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &log, &done); err != nil {
		return false
	}
	return busy == 0 && done == log
}

// startCheckpointer opens the checkpoint connection and starts its loop.
// idle (tests) opens the connection but starts no loop.
func (db *DB) startCheckpointer(ctx context.Context, busy string, idle bool) error {
	q := url.Values{}
	q.Set("_busy_timeout", busy)
	q.Set("vfs", walCkptVFSName) // its copies to the database combined: see walvfs.go
	c, err := sql.Open("sqlite", db.path+"?"+q.Encode())
	if err != nil {
		return fmt.Errorf("sqlite: open %s for checkpoints: %w", db.path, err)
	}
	c.SetMaxOpenConns(1)
	c.SetMaxIdleConns(1)
	c.SetConnMaxLifetime(0)
	c.SetConnMaxIdleTime(0)
	if err := c.PingContext(ctx); err != nil {
		_ = c.Close()
		return fmt.Errorf("sqlite: open %s for checkpoints: %w", db.path, err)
	}
	db.ckpt = c
	db.ckptStop = make(chan struct{})
	db.ckptDone = make(chan struct{})
	if idle {
		close(db.ckptDone)
		return nil
	}
	go db.checkpointLoop()
	return nil
}

func (db *DB) checkpointLoop() {
	defer close(db.ckptDone)
	t := time.NewTicker(checkpointEvery)
	defer t.Stop()
	var ticked int64 // the WAL's extent at the last tick
	for {
		select {
		case <-db.ckptStop:
			return
		case <-t.C:
			// The WAL's growth drives the passes while writes go on; the
			// tick is for the pages of writes that stopped.
			ext, _, ok := walState(db.wal.name)
			pass := tickPasses(ext, ticked, db.wal.ckptBytes)
			ticked = ext
			if ok && !pass {
				continue
			}
		case <-db.wal.wake:
			t.Reset(checkpointEvery)
		}
		if db.checkpointPasses() {
			db.wal.catchUp.Store(true)
		}
	}
}

// tickPasses reports whether the tick runs a pass, the WAL's extent being
// ext now and ticked at the last tick: only if the WAL grew by at most
// ckptBytes/walCatchUpShare meanwhile. If it restarted in between, it grew
// by ext at least (ext - ticked, negative, made the tick after every
// restart run a pass in the middle of the new cycle).
func tickPasses(ext, ticked, ckptBytes int64) bool {
	grew := ext - ticked
	if ext < ticked {
		grew = ext
	}
	return grew <= ckptBytes/walCatchUpShare
}

// checkpointPasses checkpoints PASSIVE-ly, again while batches appended
// more than walCkptBytes/walCatchUpShare during the last pass (each pass is shorter
// than the one before, up to walPasses), and reports whether the WAL
// should restart: it is past walCkptBytes, and what the committer has
// left to copy is small.
func (db *DB) checkpointPasses() bool {
	for range walPasses {
		before, _, ok := walState(db.wal.name)
		db.wal.passes.Add(1)
		// An error (busy, I/O) leaves the pages in the WAL for the next
		// attempt, or for the committer's.
		if _, err := db.ckpt.Exec(`PRAGMA wal_checkpoint(PASSIVE)`); err != nil || !ok {
			return false
		}
		after, _, _ := walState(db.wal.name)
		switch {
		case after < db.wal.ckptBytes || after < before: // small, or restarted meanwhile
			return false
		case after-before <= db.wal.ckptBytes/walCatchUpShare:
			return true
		}
	}
	return true
}

// stopCheckpointer ends the loop and closes its connection; calls after
// the first do nothing.
func (db *DB) stopCheckpointer() error {
	if db.ckpt == nil {
		return nil
	}
	var err error
	db.ckptOnce.Do(func() {
		close(db.ckptStop)
		<-db.ckptDone
		err = db.ckpt.Close()
	})
	return err
}
