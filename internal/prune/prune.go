package prune

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/tokend/tokend/internal/store"
)

// Defaults of Config.
const (
	DefaultInterval  = time.Hour
	DefaultBatchSize = 1000
	DefaultPause     = 50 * time.Millisecond
	// DefaultBatchTarget is how long a batch should take at most: a
	// slower one halves the next batch (down to MinBatchSize), a batch
	// under a quarter of it doubles the next (up to the batch size).
	DefaultBatchTarget = 100 * time.Millisecond
	MinBatchSize       = 10
	// LeaseTTL is how long the pass lease lasts unless renewed; a pass
	// renews it every LeaseTTL/4, so an instance that dies mid-pass holds
	// the work up for at most LeaseTTL.
	LeaseTTL = 2 * time.Minute
)

// Lease names. passLease is held while a pass runs (by the scheduler and by
// `tokend prune`); scheduleLease is taken for a whole interval by the
// instance whose turn it is, and never released, so that however many
// instances run, one pass starts per interval.
const (
	passLease     = "prune"
	scheduleLease = "prune-schedule"
)

// Store is what pruning needs from storage.
type Store interface {
	PruneBatch(ctx context.Context, t store.PruneTarget, before time.Time, limit int) (int, error)
	AcquireLease(ctx context.Context, name, holder string, now, until time.Time) (bool, error)
	ReleaseLease(ctx context.Context, name, holder string) error
}

// Config configures a Runner.
type Config struct {
	Store Store
	Now   func() time.Time // time.Now when nil
	Log   *slog.Logger
	// Pruners are the kinds of data to prune (see Defaults); Register adds
	// more.
	Pruners []Pruner
	// Interval is the schedule of Run (DefaultInterval when 0).
	Interval time.Duration
	// BatchSize is the most rows one statement deletes (DefaultBatchSize
	// when 0).
	BatchSize int
	// Pause is the wait between two batches, which leaves the database to
	// other work (DefaultPause when 0; negative: no pause).
	Pause time.Duration
	// BatchTarget bounds how long one batch should take: on a busy
	// database batches shrink until they fit (DefaultBatchTarget when 0).
	BatchTarget time.Duration
	// Instance names this process as a lease holder (random when empty).
	Instance string
	// Observe, when set, is called with the result of every pass that ran
	// (metrics use it).
	Observe func(Result)
}

// Runner prunes on a schedule, or once on demand.
type Runner struct {
	cfg     Config
	now     func() time.Time
	log     *slog.Logger
	pruners []Pruner
	// afterBatch is a test hook run after each batch.
	afterBatch func(kind string)
	// clock times the batches (time.Now; tests replace it).
	clock func() time.Time
}

// New returns a Runner; it checks every pruner.
func New(cfg Config) (*Runner, error) {
	r := &Runner{cfg: cfg, now: cfg.Now, log: cfg.Log, clock: time.Now}
	if r.now == nil {
		r.now = time.Now
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.cfg.Interval <= 0 {
		r.cfg.Interval = DefaultInterval
	}
	if r.cfg.BatchSize <= 0 {
		r.cfg.BatchSize = DefaultBatchSize
	}
	if r.cfg.Pause == 0 {
		r.cfg.Pause = DefaultPause
	}
	if r.cfg.BatchTarget <= 0 {
		r.cfg.BatchTarget = DefaultBatchTarget
	}
	if r.cfg.Instance == "" {
		var b [8]byte
		_, _ = rand.Read(b[:])
		r.cfg.Instance = hex.EncodeToString(b[:])
	}
	for _, p := range cfg.Pruners {
		if err := r.Register(p); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// Register adds a kind of prunable data; kinds are pruned in the order they
// were registered.
func (r *Runner) Register(p Pruner) error {
	if err := p.check(); err != nil {
		return err
	}
	for _, q := range r.pruners {
		if q.Kind == p.Kind {
			return fmt.Errorf("prune: kind %q registered twice", p.Kind)
		}
	}
	r.pruners = append(r.pruners, p)
	return nil
}

// Pruners returns the registered pruners, in order.
func (r *Runner) Pruners() []Pruner { return append([]Pruner(nil), r.pruners...) }

// KindResult is what a pass did to one kind of data.
type KindResult struct {
	Kind    string
	Rows    int
	Batches int
	// Longest is the longest single batch statement (its transaction).
	Longest time.Duration
	// Smallest is the smallest batch size the pass went down to (the
	// batch size when no batch was slow).
	Smallest int
}

// Result is what one pass did.
type Result struct {
	// Ran is false when another instance held the lease: nothing was done.
	Ran   bool
	Kinds []KindResult
	// Longest is the longest single batch of the pass.
	Longest time.Duration
	Took    time.Duration
}

// Rows is the total of rows deleted.
func (res Result) Rows() int {
	n := 0
	for _, k := range res.Kinds {
		n += k.Rows
	}
	return n
}

// ErrLeaseLost ends a pass whose lease another instance took over (it
// expired while this one was stalled).
var ErrLeaseLost = errors.New("prune: the lease was lost to another instance")

// Pass runs one full pass now, if no other instance is running one: under
// the pass lease, each kind in turn is deleted in batches until nothing past
// its cutoff is left. Cutoffs are taken once, at the start.
func (r *Runner) Pass(ctx context.Context) (Result, error) {
	start := r.clock()
	now := r.now()
	got, err := r.cfg.Store.AcquireLease(ctx, passLease, r.cfg.Instance, now, now.Add(LeaseTTL))
	if err != nil {
		return Result{}, fmt.Errorf("take prune lease: %w", err)
	}
	if !got {
		r.log.DebugContext(ctx, "prune pass skipped: another instance holds the lease")
		return Result{}, nil
	}
	defer func() {
		// Released even when ctx ended, so that the next pass need not
		// wait for the lease to expire.
		if err := r.cfg.Store.ReleaseLease(context.WithoutCancel(ctx), passLease, r.cfg.Instance); err != nil {
			r.log.WarnContext(ctx, "release prune lease", "err", err)
		}
	}()
	res := Result{Ran: true}
	renewed := now
	for _, p := range r.pruners {
		kr := KindResult{Kind: p.Kind, Smallest: r.cfg.BatchSize}
		cutoff := p.Cutoff(now)
		size := r.cfg.BatchSize
		for {
			if t := r.now(); t.Sub(renewed) >= LeaseTTL/4 {
				ok, err := r.cfg.Store.AcquireLease(ctx, passLease, r.cfg.Instance, t, t.Add(LeaseTTL))
				if err != nil {
					err = fmt.Errorf("renew prune lease: %w", err)
					return r.finish(ctx, res, kr, start, err)
				}
				if !ok {
					return r.finish(ctx, res, kr, start, ErrLeaseLost)
				}
				renewed = t
			}
			b := r.clock()
			n, err := r.cfg.Store.PruneBatch(ctx, p.Target, cutoff, size)
			d := r.clock().Sub(b)
			if err != nil {
				return r.finish(ctx, res, kr, start, fmt.Errorf("prune %s: %w", p.Kind, err))
			}
			kr.Rows += n
			kr.Batches++
			kr.Longest = max(kr.Longest, d)
			if r.afterBatch != nil {
				r.afterBatch(p.Kind)
			}
			if n < size {
				break
			}
			// Keep each batch short on a busy database: the next is
			// smaller after a slow one, larger again after a quick one.
			switch {
			case d > r.cfg.BatchTarget && size > MinBatchSize:
				size = max(size/2, MinBatchSize)
			case d < r.cfg.BatchTarget/4 && size < r.cfg.BatchSize:
				size = min(size*2, r.cfg.BatchSize)
			}
			kr.Smallest = min(kr.Smallest, size)
			if err := r.pause(ctx); err != nil {
				return r.finish(ctx, res, kr, start, err)
			}
		}
		res.Kinds = append(res.Kinds, kr)
		res.Longest = max(res.Longest, kr.Longest)
	}
	return r.finish(ctx, res, KindResult{}, start, nil)
}

// finish records a pass (also one cut short, with the kind it was on) and
// logs it.
func (r *Runner) finish(ctx context.Context, res Result, partial KindResult, start time.Time, err error) (Result, error) {
	if partial.Kind != "" {
		res.Kinds = append(res.Kinds, partial)
		res.Longest = max(res.Longest, partial.Longest)
	}
	res.Took = r.clock().Sub(start)
	attrs := []any{"rows", res.Rows(), "longest_batch", res.Longest, "took", res.Took}
	for _, k := range res.Kinds {
		if k.Rows > 0 {
			attrs = append(attrs, slog.Group(k.Kind, "rows", k.Rows, "batches", k.Batches, "longest_batch", k.Longest,
				"smallest_batch", k.Smallest))
		}
	}
	switch {
	case err != nil && ctx.Err() != nil:
		// Shutting down: the next pass goes on where this one stopped.
		r.log.InfoContext(ctx, "prune pass interrupted", attrs...)
	case err != nil:
		r.log.WarnContext(ctx, "prune pass stopped", append(attrs, "err", err)...)
	default:
		r.log.InfoContext(ctx, "prune pass", attrs...)
	}
	if r.cfg.Observe != nil {
		r.cfg.Observe(res)
	}
	return res, err
}

func (r *Runner) pause(ctx context.Context) error {
	if r.cfg.Pause < 0 {
		return ctx.Err()
	}
	t := time.NewTimer(r.cfg.Pause)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Due reports whether this instance should run the scheduled pass now: it
// takes the schedule lease for one interval, which succeeds for one
// instance per interval however many ask.
func (r *Runner) Due(ctx context.Context) (bool, error) {
	now := r.now()
	got, err := r.cfg.Store.AcquireLease(ctx, scheduleLease, r.cfg.Instance, now, now.Add(r.cfg.Interval))
	if err != nil {
		return false, fmt.Errorf("take prune schedule lease: %w", err)
	}
	return got, nil
}

// Run runs the schedule until ctx ends: at start and every interval, the
// instance whose turn it is runs a pass.
func (r *Runner) Run(ctx context.Context) {
	t := time.NewTicker(r.cfg.Interval)
	defer t.Stop()
	for {
		due, err := r.Due(ctx)
		if err != nil && ctx.Err() == nil {
			r.log.WarnContext(ctx, "prune schedule", "err", err)
		}
		if due {
			// Pass logs its own failures.
			_, _ = r.Pass(ctx)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
