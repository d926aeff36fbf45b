package postgres

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/gatehouse-pdp/gatehouse/pdp/store"
)

// revisionChannel is the NOTIFY channel of revision changes. Its payload
// is "<tenant_id>:<revision>"; the ID may itself contain ':', the revision
// is what follows the last one.
const revisionChannel = "gatehouse_revisions"

// notifyRevision is a SQL expression over a tenants row that queues the
// row's revision on revisionChannel. Writes put it in the RETURNING clause
// of the statement that sets the revision, so the notification belongs to
// that transaction: PostgreSQL delivers it when the transaction commits,
// to every listening session (the writer's own included), and drops it on
// rollback. A payload is limited to 8000 bytes; an ID too long for one is
// sent as an empty payload, which listeners read as "resynchronize".
// pg_notify returns void: scan its column into nil.
const notifyRevision = `pg_notify('` + revisionChannel + `', CASE WHEN octet_length(id) <= 7000 THEN id || ':' || revision ELSE '' END)`

// listenerName is the application_name of subscription connections, so an
// operator (or a test) can find them in pg_stat_activity.
const listenerName = "gatehouse revisions"

// Timing of a subscription.
const (
	// listenConnectTimeout bounds one attempt to connect and LISTEN.
	listenConnectTimeout = 10 * time.Second
	// listenPingInterval is how long a subscription waits for a
	// notification before it checks its connection with a ping: a server
	// or network that vanished without closing the socket is noticed
	// within about this long, not at the next TCP keepalive.
	listenPingInterval = 15 * time.Second
	// listenPingTimeout bounds that ping.
	listenPingTimeout = 5 * time.Second
	// subscriptionBuffer is how many changes wait for a slow reader
	// before the subscription stops reading from the server.
	subscriptionBuffer = 256
)

// backoff is how long a subscription waits before reconnecting: min after
// a connection that worked, doubling on every failed attempt up to max,
// each wait jittered by ±20% so replicas do not reconnect in lockstep.
type backoff struct{ min, max time.Duration }

var defaultReconnect = backoff{min: 100 * time.Millisecond, max: 5 * time.Second}

func (b backoff) validate() error {
	if b.min <= 0 || b.max < b.min {
		return fmt.Errorf("reconnect backoff must have 0 < min ≤ max, got %s..%s", b.min, b.max)
	}
	return nil
}

func (b backoff) next(cur time.Duration) time.Duration { return min(2*cur, b.max) }

func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// WithReconnectBackoff sets how long a revision subscription waits before
// reconnecting after its connection fails: minWait at first, doubling up
// to maxWait while attempts fail (defaults 100ms and 5s). Notifications
// sent meanwhile are lost, which the subscriber's periodic comparison of
// revisions makes up for.
func WithReconnectBackoff(minWait, maxWait time.Duration) Option {
	return func(o *options) { o.reconnect = backoff{min: minWait, max: maxWait} }
}

// listenConfig returns the settings of subscription connections: the
// pool's, named listenerName. A subscription must hold a session of its
// own (LISTEN belongs to a session), so it never comes from the pool and
// never counts against pool_max_conns; it also means a transaction-pooling
// PgBouncer in front of the database cannot carry it.
func listenConfig(pool *pgx.ConnConfig) *pgx.ConnConfig {
	cfg := pool.Copy()
	cfg.RuntimeParams["application_name"] = listenerName
	return cfg
}

// SubscribeRevisions listens for the revision changes of every process
// writing to this database, on a connection of its own, until ctx ends or
// the DB is closed; then the channel is closed. When the connection fails,
// it sends a change carrying the error, reconnects with backoff (see
// WithReconnectBackoff) and sends a Resync once it listens again; a
// subscription that never reached the server sends its errors the same
// way while it keeps trying. See store.RevisionNotifier.
func (db *DB) SubscribeRevisions(ctx context.Context) (<-chan store.RevisionChange, error) {
	if err := errors.Join(ctx.Err(), db.closing.Err()); err != nil {
		return nil, fmt.Errorf("postgres: subscribe to revisions: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(db.closing, cancel)
	ch := make(chan store.RevisionChange, subscriptionBuffer)
	db.listeners.Go(func() {
		defer close(ch)
		defer cancel()
		defer stop()
		db.listen(ctx, ch)
	})
	return ch, nil
}

// listen runs subscription sessions one after another until ctx ends.
func (db *DB) listen(ctx context.Context, ch chan<- store.RevisionChange) {
	wait := db.reconnect.min
	for {
		listened, err := db.listenOnce(ctx, ch)
		if ctx.Err() != nil {
			return
		}
		if listened {
			wait = db.reconnect.min
		}
		if !send(ctx, ch, store.RevisionChange{Err: fmt.Errorf("postgres: revision subscription: %w", err)}) {
			return
		}
		t := time.NewTimer(jitter(wait))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		wait = db.reconnect.next(wait)
	}
}

// listenOnce connects, LISTENs, announces a Resync and relays
// notifications until the connection fails (the error is returned) or ctx
// ends. listened reports whether it got as far as listening.
func (db *DB) listenOnce(ctx context.Context, ch chan<- store.RevisionChange) (listened bool, err error) {
	cctx, cancel := context.WithTimeout(ctx, listenConnectTimeout)
	defer cancel()
	conn, err := pgx.ConnectConfig(cctx, db.listenCfg)
	if err != nil {
		return false, err
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), listenPingTimeout)
		defer cancel()
		_ = conn.Close(closeCtx)
	}()
	if _, err := conn.Exec(cctx, `LISTEN `+revisionChannel); err != nil {
		return false, err
	}
	if !send(ctx, ch, store.RevisionChange{Resync: true}) {
		return true, nil
	}
	for {
		wctx, cancel := context.WithTimeout(ctx, listenPingInterval)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		switch {
		case ctx.Err() != nil:
			return true, nil
		case err == nil:
			if !send(ctx, ch, parseRevision(n.Payload)) {
				return true, nil
			}
		case pgconn.Timeout(err):
			pctx, cancel := context.WithTimeout(ctx, listenPingTimeout)
			err := conn.Ping(pctx)
			cancel()
			if err != nil && ctx.Err() == nil {
				return true, err
			}
		default:
			return true, err
		}
	}
}

// send delivers c unless ctx ends first.
func send(ctx context.Context, ch chan<- store.RevisionChange, c store.RevisionChange) bool {
	select {
	case ch <- c:
		return true
	case <-ctx.Done():
		return false
	}
}

// parseRevision reads a revisionChannel payload; anything else (an empty
// payload, or one a foreign NOTIFY sent) asks for a Resync, which is always
// safe.
func parseRevision(payload string) store.RevisionChange {
	i := strings.LastIndexByte(payload, ':')
	if i <= 0 {
		return store.RevisionChange{Resync: true}
	}
	rev, err := strconv.ParseUint(payload[i+1:], 10, 64)
	if err != nil || rev == 0 {
		return store.RevisionChange{Resync: true}
	}
	return store.RevisionChange{TenantID: payload[:i], Revision: rev}
}
