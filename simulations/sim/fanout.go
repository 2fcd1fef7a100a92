package sim

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"time"

	"meshd.dev/meshd/routing"
	"meshd.dev/meshd/simulations/radio"
)

// Parallel receive (Options.Workers = 2): the engines of a frame's
// receivers, and the engine of its sender told that the frame is done,
// take their Step on two goroutines, while everything the simulator does
// with the results (trace records, statistics, the transmissions and
// timers of each engine's Ready) stays on the run's goroutine, in the
// order of the serial run. That gives the same run, byte for byte,
// because
//
//   - an engine's Step reads and changes only its own engine, its input
//     and the time (routing is pure: no clock, its own Config.Rand); the
//     two caches the engines of a run share (verifyCache, openCache) lock,
//     and what they return does not depend on who asked first (a cached
//     result is the result the asker would have computed, and the counts
//     are kept so that they come out as in the serial run);
//   - every engine gets its inputs in the serial order: the Steps of one
//     frame are on distinct engines, and what the simulator does with an
//     engine's Ready touches no other engine at once (another node hears
//     of it only through queued events), so a Step done early cannot see
//     anything a Step of the serial order before it would have changed.
//     FAPP scenarios, whose deliveries call other engines at once, and
//     the baseline strategies' frames (no engine) stay serial.
//
// A frame's Steps take a few microseconds each, less than waking a parked
// goroutine, so the helper spins while frames keep coming and parks only
// after a long idle spell (fanSpin); the run's goroutine takes jobs
// itself while it waits, so a helper that is late costs nothing but its
// spin.

// fanSpin is how long the helper polls for jobs before it parks: a busy
// run ends a frame every 20 microseconds or so, and waking a parked
// goroutine takes longer than a frame's Steps.
const fanSpin = time.Millisecond

// fanStall is how long the run's goroutine waits for a Step the helper
// runs before it concludes that the helper lost its CPU (a Step takes a
// few microseconds; the helper spinning on an idle core starts one at
// once), and fanSolo how many frames it then does without the helper,
// which parks meanwhile: on a machine busy with other work a helper that
// the system deschedules in the middle of a Step would cost more than it
// saves.
//
// Likewise, when the helper ran fewer than an eighth of the Steps of the
// last fanWindow frames (it gets too little CPU: another program keeps
// the second core), the run does without it for fanIdle frames (about a
// second): a helper that polls costs the run's goroutine its share of a
// busy machine and gives nothing back.
const (
	fanStall  = 200 * time.Microsecond
	fanSolo   = 4096
	fanWindow = 4096
	fanIdle   = 65536
)

// fanJobs is how many Steps a frame can hand out; a frame with more
// candidate receivers runs the rest on the run's goroutine.
const fanJobs = 256

// Job states. The zero value is not claimable.
const (
	jobIdle    uint32 = iota // not posted in this frame
	jobPosted                // waiting for a goroutine
	jobClaimed               // running
	jobDone                  // err and rd are set
)

// fanJob is one engine Step of a frame's fan-out, and the engine's first
// Ready after it (taking it is the engine's work too; the simulator acts
// on it in order, see processReady).
type fanJob struct {
	state atomic.Uint32
	n     *node
	in    routing.Input
	frame []byte // FrameReceived's frame, copied by the job
	// fr is the job's input if isFrame (in is nil), with a copy of frame:
	// Step takes it by pointer, so that no frame boxes one.
	fr      routing.FrameReceived
	isFrame bool
	err     error
	ready   bool
	rd      routing.Ready
	wake    time.Time // the engine's NextWake when it had no Ready
	// panicked is the panic of a Step the helper ran, with its stack:
	// wait panics with it on the run's goroutine, where a one-worker run
	// would have panicked (Run's caller sees it, its defers run).
	panicked any
}

// fanStats count the fan-out's work: frames and jobs (the same in every
// run of a scenario), and the jobs the helper ran (timing: for the
// performance report only).
type fanStats struct {
	frames, jobs, helper uint64
	stalls               uint64 // times the helper was found descheduled
	idles                uint64 // times it ran too few Steps (fanIdle)
	// trials is how many times the run compared the two ways, and
	// won how many of them the fan-out was the faster by fanMargin.
	trials, won uint64
}

// fanout hands out one frame's Steps to the run's goroutine and a helper.
type fanout struct {
	stats    fanStats // frames and jobs: the run's goroutine's
	solo     int      // frames still to do without the helper
	trial    fanTrial // which of the two ways is faster (fanTrial)
	events   *uint64  // the run's event count (Sim.events), for trial
	keep     bool     // never do without it (tests: Sim.fanKeep)
	win      fanStats // the counts when the current window began
	helped   atomic.Uint64
	now      time.Time
	jobs     [fanJobs]fanJob
	posted   atomic.Int32
	sleeping atomic.Bool
	wake     chan struct{}
	quit     atomic.Bool
	exited   chan struct{}
}

func newFanout(events *uint64) *fanout {
	f := &fanout{wake: make(chan struct{}, 1), exited: make(chan struct{}), events: events}
	go f.helper()
	return f
}

// begin starts a frame's fan-out at now. No job of the previous frame is
// pending (end waited for them), so the helper reads nothing of f but
// the job states until it claims a job posted after this.
func (f *fanout) begin(now time.Time) {
	f.now = now
	f.stats.frames++
}

// post queues n's Step of in and returns its job number, or -1 if the
// frame has no job left: the caller steps n itself. A job posted claimed
// is the caller's, to run with execute.
func (f *fanout) post(n *node, in routing.Input, claimed bool) int {
	return f.postJob(n, in, routing.FrameReceived{}, false, claimed)
}

// postFrame is post of fr, whose frame the job copies (it is the sender's
// and goes to every receiver).
func (f *fanout) postFrame(n *node, fr routing.FrameReceived, claimed bool) int {
	return f.postJob(n, nil, fr, true, claimed)
}

func (f *fanout) postJob(n *node, in routing.Input, fr routing.FrameReceived, isFrame, claimed bool) int {
	k := int(f.posted.Load())
	if k == fanJobs {
		return -1
	}
	j := &f.jobs[k]
	j.n, j.in, j.frame, j.err, j.ready, j.panicked = n, in, fr.Frame, nil, false, nil
	j.fr, j.isFrame = fr, isFrame
	if claimed {
		j.state.Store(jobClaimed)
	} else {
		j.state.Store(jobPosted)
	}
	f.posted.Store(int32(k + 1))
	f.stats.jobs++
	if f.sleeping.Load() {
		select {
		case f.wake <- struct{}{}:
		default:
		}
	}
	return k
}

// tryRun runs job k if no goroutine has claimed it.
func (f *fanout) tryRun(k int) bool {
	j := &f.jobs[k]
	if j.state.Load() != jobPosted || !j.state.CompareAndSwap(jobPosted, jobClaimed) {
		return false
	}
	f.execute(k)
	return true
}

// tryRunCaught is tryRun for the helper: a panic in the Step is kept in
// the job, for wait to raise on the run's goroutine, rather than ending
// the process from a goroutine nobody can recover.
func (f *fanout) tryRunCaught(k int) bool {
	j := &f.jobs[k]
	if j.state.Load() != jobPosted || !j.state.CompareAndSwap(jobPosted, jobClaimed) {
		return false
	}
	defer func() {
		if p := recover(); p != nil {
			j.panicked = fmt.Sprintf("%v [engine Step on the fan-out helper]\n%s", p, debug.Stack())
			j.in, j.frame, j.fr.Frame = nil, nil, nil
			j.state.Store(jobDone)
		}
	}()
	f.execute(k)
	return true
}

// execute runs job k, claimed by the caller.
func (f *fanout) execute(k int) {
	j := &f.jobs[k]
	in := j.in
	if j.isFrame {
		j.fr.Frame = rxCopy(j.frame)
		in = &j.fr
	}
	j.err = j.n.eng.Step(f.now, in)
	if j.ready = j.n.eng.HasReady(); j.ready {
		j.rd = j.n.eng.Ready()
	} else {
		j.wake = j.n.eng.NextWake()
	}
	j.in, j.frame, j.fr.Frame = nil, nil, nil
	j.state.Store(jobDone)
}

// wait returns job k once it is done. While the helper runs it, the run's
// goroutine runs the frame's last jobs not yet claimed.
func (f *fanout) wait(k int) *fanJob {
	j := &f.jobs[k]
	if f.tryRun(k) {
		return j
	}
	var since time.Time
	for spins := 1; j.state.Load() != jobDone; spins++ {
		for c := int(f.posted.Load()) - 1; c > k; c-- {
			if f.tryRun(c) {
				break
			}
		}
		if spins%256 != 0 {
			continue
		}
		if since.IsZero() {
			since = time.Now()
			continue
		}
		if time.Since(since) < fanStall {
			continue
		}
		// The helper lost its CPU in the middle of a Step (a busy
		// machine): do without it for a while, and let it have this
		// CPU if it waits for it. Not before: a yield can cost the run's
		// goroutine a time slice.
		if f.solo == 0 {
			f.solo = fanSolo
			f.stats.stalls++
		}
		osYield()
	}
	if j.panicked != nil {
		panic(j.panicked)
	}
	return j
}

// end waits for every job of the frame and clears it for the next.
func (f *fanout) end() {
	n := int(f.posted.Load())
	for k := range n {
		j := f.wait(k)
		j.n, j.err, j.rd = nil, nil, routing.Ready{}
		j.state.Store(jobIdle)
	}
	f.posted.Store(0)
}

// stop ends the helper, waits for it and returns the counts.
func (f *fanout) stop() fanStats {
	f.quit.Store(true)
	select {
	case f.wake <- struct{}{}:
	default:
	}
	<-f.exited
	st := f.stats
	st.helper = f.helped.Load()
	return st
}

// helper runs jobs as they are posted, first to last, spinning between
// them and parking after fanSpin without a job.
func (f *fanout) helper() {
	defer close(f.exited)
	idle, since := 0, time.Now()
	for !f.quit.Load() {
		ran := false
		for k := range int(f.posted.Load()) {
			if f.tryRunCaught(k) {
				ran = true
				break
			}
		}
		if ran {
			f.helped.Add(1)
			idle = 0
			continue
		}
		if idle++; idle%256 != 0 {
			continue
		}
		if idle == 256 {
			since = time.Now()
		}
		if time.Since(since) < fanSpin {
			runtime.Gosched() // let the trace writer and the collector in
			osYield()         // and other programs
			continue
		}
		f.sleeping.Store(true)
		if f.claimable() || f.quit.Load() {
			f.sleeping.Store(false)
			continue
		}
		<-f.wake
		f.sleeping.Store(false)
		idle = 0
	}
}

// claimable reports whether a posted job waits for a goroutine.
func (f *fanout) claimable() bool {
	for k := range int(f.posted.Load()) {
		if f.jobs[k].state.Load() == jobPosted {
			return true
		}
	}
	return false
}

// radioEndFan is radioEnd with the Steps of the frame's receivers and of
// its sender's TxDone run by the fan-out: the sender's is posted before
// the medium judges the frame (the helper runs it meanwhile), the
// receivers' once it has; the results are used in radioEnd's order.
func (s *Sim) radioEndFan(n *node, id radio.TxID, gen uint64, tx routing.Transmit) {
	f := s.fan
	f.begin(s.now)
	sender, stepSender := -1, gen == n.gen && n.up
	if stepSender {
		sender = f.post(n, txDoneLoRa, false)
	}
	var err error
	s.rx, err = s.medium.Outcomes(id, s.rx[:0])
	if err != nil {
		s.errs++
	}
	s.warm(s.rx)
	// The first receiver's Step is this goroutine's: it is needed first,
	// and the helper is likely still at the sender's.
	s.fanOf = s.fanOf[:0]
	first := -1
	for _, r := range s.rx {
		k := -1
		if r.Status == radio.Received && s.radioUp[r.Receiver] && s.sameChannel(n, s.radioOf[r.Receiver]) {
			k = f.postFrame(s.radioOf[r.Receiver], routing.FrameReceived{Link: loraLinkID, Frame: tx.Frame, SNR: r.SNRDB, HasSNR: true}, first < 0)
			if first < 0 {
				first = k
			}
		}
		s.fanOf = append(s.fanOf, int32(k))
	}
	if first >= 0 {
		f.execute(first)
	}
	for i, r := range s.rx {
		if !s.radioUp[r.Receiver] {
			continue
		}
		switch r.Status {
		case radio.Collision:
			if s.chans == nil {
				s.radioLost[r.Receiver].collisions++
				s.trace.rec(s.now, "lost", int(s.radioIdx[r.Receiver]), int(loraLinkID), "collision")
				continue
			}
		case radio.HalfDuplex:
			if s.chans == nil {
				s.radioLost[r.Receiver].halfDuplex++
				s.trace.rec(s.now, "lost", int(s.radioIdx[r.Receiver]), int(loraLinkID), "half-duplex")
				continue
			}
		}
		to := s.radioOf[r.Receiver]
		if !s.sameChannel(n, to) {
			continue
		}
		switch r.Status {
		case radio.Received:
			s.trace.rx(s.now, to.idx, int(loraLinkID), n.idx, r.SNRDB)
			if k := int(s.fanOf[i]); k >= 0 {
				s.processJob(f.wait(k))
			} else {
				s.stepFrame(to, tx.Frame, r.SNRDB)
			}
			to.stats.FramesReceived++
			to.stats.BytesReceived += uint64(len(tx.Frame))
		case radio.Collision:
			to.stats.Collisions++
			s.trace.rec(s.now, "lost", to.idx, int(loraLinkID), "collision")
		case radio.HalfDuplex:
			to.stats.HalfDuplex++
			s.trace.rec(s.now, "lost", to.idx, int(loraLinkID), "half-duplex")
		}
	}
	switch {
	case sender >= 0:
		s.processJob(f.wait(sender))
	case stepSender:
		s.step(n, txDoneLoRa)
	}
	f.end()
	s.radioSend(n)
}

// processJob is the rest of step for a job: the simulator's part, in
// order.
func (s *Sim) processJob(j *fanJob) {
	if j.err != nil {
		s.errs++
	}
	if !j.ready {
		s.scheduleWake(j.n, j.wake) // process would find no Ready either
		return
	}
	s.handleReady(j.n, &j.rd)
	s.process(j.n)
}

// FanOutStats reports, for a run with two workers, how many radio frames
// went through the fan-out, how many engine Steps they handed out, how
// many of those the helper goroutine ran (the rest ran on the run's
// goroutine), and how often the run did without the helper for a while
// because the system had descheduled it in a Step (fanStall) or gave it
// too little CPU (fanIdle). Timing decides all five, never the results.
// All 0 with one worker.
func (s *Sim) FanOutStats() (frames, steps, helper, stalls, idles uint64) {
	st := s.fanStats
	return st.frames, st.jobs, st.helper, st.stalls, st.idles
}

// shared reports whether the next frame goes through the fan-out (else
// radioEnd does it alone: see fanStall and fanTrial).
func (f *fanout) shared() bool {
	if f.keep {
		return true
	}
	if !f.trial.fan(f) {
		return false
	}
	if f.solo > 0 {
		f.solo--
		return false
	}
	if f.stats.frames-f.win.frames < fanWindow {
		return true
	}
	h, j := f.helped.Load(), f.stats.jobs
	starved := 8*(h-f.win.helper) < j-f.win.jobs
	f.win = fanStats{frames: f.stats.frames, jobs: j, helper: h}
	if !starved {
		return true
	}
	f.solo = fanIdle - 1
	f.stats.idles++
	return false
}
