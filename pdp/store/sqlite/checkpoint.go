package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"time"
)

// Checkpoints. In WAL mode every commit appends pages to the WAL and a
// checkpoint copies them back into the database file. By default the
// committing connection checkpoints whenever the WAL passes 1,000 pages,
// inside COMMIT: the batch that crosses it waits for the copy (and its
// fsyncs), and a page rewritten by many commits is copied once per 1,000
// WAL pages. Here the write connection only checkpoints as a safety net
// (walSafetyPages), and a connection of its own checkpoints PASSIVE-ly
// every checkpointEvery, beside the writer rather than in its way: no
// batch waits for a copy, and a page every action touches (a tenant's
// index leaf, a rollup row) is copied once per interval, not once per
// 1,000 pages of WAL. A PASSIVE checkpoint takes no lock a writer or
// reader waits for; what a reader still needs stays in the WAL until the
// next one.
const (
	checkpointEvery = time.Second
	// walSafetyPages is the write connection's wal_autocheckpoint: it
	// only acts if the background checkpoints stop keeping up (about
	// 40 MB of WAL at 4 KiB pages).
	walSafetyPages = 10_000
)

// startCheckpointer opens the checkpoint connection and starts its loop.
func (db *DB) startCheckpointer(ctx context.Context, busy string) error {
	q := url.Values{}
	q.Set("_busy_timeout", busy)
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
	go db.checkpointLoop()
	return nil
}

func (db *DB) checkpointLoop() {
	defer close(db.ckptDone)
	t := time.NewTicker(checkpointEvery)
	defer t.Stop()
	for {
		select {
		case <-db.ckptStop:
			return
		case <-t.C:
		}
		// An error (busy, I/O) leaves the pages in the WAL for the next
		// attempt, or for the write connection's safety net.
		_, _ = db.ckpt.Exec(`PRAGMA wal_checkpoint(PASSIVE)`)
	}
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
