package daemon

import (
	"meshd.dev/meshd/fapp"
	"meshd.dev/meshd/rpcapi"
)

// indexEvent tells subscribers that region r's index changed
// (rpcapi.EventFAPPIndex), so an app re-runs its query instead of polling.
// It carries only the region, never who or what changed. The hub never
// blocks, so it may be called with f.mu held.
func (f *fappNode) indexEvent(r fapp.Region) {
	f.n.hub.publish(rpcapi.Event{Kind: rpcapi.EventFAPPIndex, FAPPRegion: r.String()})
}

// profileIndexEvent is indexEvent for the region of therapist k's held
// announce (a profile carries no region of its own).
func (f *fappNode) profileIndexEvent(k fapp.TherapistKey) {
	if a := f.idx.Get(k); a != nil {
		f.indexEvent(a.Region())
	}
}
