package daemon

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"meshd.dev/meshd/daemon/store"
	"meshd.dev/meshd/fapp"
	"meshd.dev/meshd/rpcapi"
)

var _ rpcapi.FAPPNode = (*Node)(nil)

// defaultHold is how long "hold" keeps a slot when the therapist gives no
// time.
const defaultHold = 48 * time.Hour

// apiErr maps a fapp error to the API's sentinels.
func apiErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, rpcapi.ErrInvalidParams), errors.Is(err, rpcapi.ErrRefused), errors.Is(err, rpcapi.ErrNotFound),
		errors.Is(err, rpcapi.ErrUnavailable):
		return err
	case errors.Is(err, fapp.ErrNotFound):
		return fmt.Errorf("%w: %v", rpcapi.ErrNotFound, err)
	case errors.Is(err, fapp.ErrTransition), errors.Is(err, fapp.ErrLimit):
		return fmt.Errorf("%w: %v", rpcapi.ErrRefused, err)
	case errors.Is(err, errFAPPStore), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err // the API answers a call given up as unavailable
	}
	return fmt.Errorf("%w: %v", rpcapi.ErrInvalidParams, err)
}

// fappSend sends what the FAPP side queued, on the loop.
func (n *Node) fappSend(ctx context.Context, sync bool) error {
	return n.call(ctx, func() {
		if sync {
			// An own edit's early announce goes out before the API
			// answers, so that what the therapist did is in the mesh
			// (and in the own index) once the call returns.
			n.fapp.mu.Lock()
			n.fapp.releaseLocked(n.now())
			n.fapp.mu.Unlock()
			n.fapp.syncChannels()
		}
		n.fapp.flush()
	})
}

// FAPPProfileGet implements rpcapi.FAPPNode.
func (n *Node) FAPPProfileGet(ctx context.Context) (rpcapi.FAPPProfileInfo, error) {
	if err := n.closed(); err != nil { // a closed node answers nothing
		return rpcapi.FAPPProfileInfo{}, err
	}
	f := n.fapp
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.profileInfoLocked(), nil
}

func (f *fappNode) profileInfoLocked() rpcapi.FAPPProfileInfo {
	info := rpcapi.FAPPProfileInfo{Therapist: fapp.TherapistKeyOf(f.n.id.Compact()).String()}
	if f.profile != nil && f.template != nil {
		p := rpcapi.FAPPProfileOf(*f.template, *f.profile)
		info.Profile, info.Sequence, info.Updated = &p, f.profile.Sequence, f.profile.Issued
	}
	return info
}

// FAPPProfileSet implements rpcapi.FAPPNode.
func (n *Node) FAPPProfileSet(ctx context.Context, p rpcapi.FAPPProfile) (rpcapi.FAPPProfileInfo, error) {
	t, pr, err := p.Parse()
	if err != nil {
		return rpcapi.FAPPProfileInfo{}, apiErr(err)
	}
	f := n.fapp
	now := n.now()
	f.mu.Lock()
	prof, err := f.setProfileLocked(pr.Name, pr.Schwerpunkte, now)
	if err == nil {
		t.Profile, t.Therapist = mustRef(prof), fapp.TherapistKeyOf(n.id.Compact())
		f.template = &t
		f.pub.SetProfile(t, now)
		err = f.saveOfferLocked(false)
	}
	info := f.profileInfoLocked()
	f.mu.Unlock()
	if err != nil {
		return info, apiErr(err)
	}
	f.poke()
	return info, n.fappSend(ctx, true)
}

// FAPPPublish implements rpcapi.FAPPNode.
func (n *Node) FAPPPublish(ctx context.Context, p rpcapi.FAPPPublishParams) (rpcapi.FAPPOffer, error) {
	f := n.fapp
	now := n.now()
	f.mu.Lock()
	if f.template == nil {
		f.mu.Unlock()
		return rpcapi.FAPPOffer{}, fmt.Errorf("%w: set the profile (fapp.profile) before publishing slots", rpcapi.ErrRefused)
	}
	slots := f.pub.Slots()
	mark := slotMarkOf(f.slotMark, slots)
	for _, ps := range p.Slots {
		s, err := ps.Parse()
		if err == nil {
			s.ID, mark, err = assignSlotID(slots, s.ID, mark)
		}
		if err != nil {
			f.mu.Unlock()
			return rpcapi.FAPPOffer{}, apiErr(err)
		}
		if i := slices.IndexFunc(slots, func(o fapp.Slot) bool { return o.ID == s.ID }); i >= 0 {
			if err := editable(slots[i]); err != nil {
				f.mu.Unlock()
				return rpcapi.FAPPOffer{}, err
			}
			slots[i] = s
		} else {
			slots = append(slots, s)
		}
	}
	t := *f.template
	err := f.setOfferLocked(&t, slots, now)
	offer := f.offerLocked(now)
	f.mu.Unlock()
	if err != nil {
		return offer, apiErr(err)
	}
	f.poke()
	return offer, n.fappSend(ctx, true)
}

// FAPPWithdraw implements rpcapi.FAPPNode.
func (n *Node) FAPPWithdraw(ctx context.Context, p rpcapi.FAPPWithdrawParams) (rpcapi.FAPPOffer, error) {
	f := n.fapp
	now := n.now()
	f.mu.Lock()
	if f.template == nil {
		f.mu.Unlock()
		return rpcapi.FAPPOffer{}, fmt.Errorf("%w: nothing published", rpcapi.ErrRefused)
	}
	var err error
	if len(p.Slots) == 0 {
		f.pub.Withdraw(now)
		err = f.saveOfferLocked(true)
	} else {
		slots := f.pub.Slots()
		for _, id := range p.Slots {
			i := slices.IndexFunc(slots, func(o fapp.Slot) bool { return o.ID == id })
			if i < 0 {
				f.mu.Unlock()
				return rpcapi.FAPPOffer{}, fmt.Errorf("%w: no own slot %d", rpcapi.ErrNotFound, id)
			}
			slots = slices.Delete(slots, i, i+1)
		}
		f.pub.SetSlots(slots, now)
		err = f.saveOfferLocked(false)
	}
	offer := f.offerLocked(now)
	f.mu.Unlock()
	if err != nil {
		return offer, apiErr(err)
	}
	f.poke()
	return offer, n.fappSend(ctx, true)
}

// FAPPSlots implements rpcapi.FAPPNode.
func (n *Node) FAPPSlots(ctx context.Context) (rpcapi.FAPPOffer, error) {
	if err := n.closed(); err != nil { // a closed node answers nothing
		return rpcapi.FAPPOffer{}, err
	}
	f := n.fapp
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.offerLocked(n.now()), nil
}

func (f *fappNode) offerLocked(now time.Time) rpcapi.FAPPOffer {
	o := rpcapi.FAPPOffer{Therapist: fapp.TherapistKeyOf(f.n.id.Compact()).String(), Slots: []rpcapi.FAPPSlot{},
		Sequence: f.pub.Sequence()}
	for _, s := range f.pub.Slots() {
		o.Slots = append(o.Slots, rpcapi.FAPPSlotOf(s))
	}
	var last *fapp.SlotAnnounce
	if f.lastRaw != nil {
		// Parsed at its own issue time: the signature was checked when it
		// was made, this only reads it back.
		last, _ = fapp.ParseSlotAnnounce(f.lastRaw, now, 0)
	}
	if last != nil {
		o.Published, o.Expires, o.Withdrawn = last.Issued, last.Expires, last.Withdrawn
	}
	if at, ok := f.pub.Next(); ok && !f.pub.Repeating() && (last == nil || at.Before(last.Issued.Add(fapp.DefaultAnnounceLifetime/2))) {
		o.Pending, o.NextAnnounce = true, at
	}
	if f.pub.Early(now) {
		// An own edit goes out at the next tick, within a second.
		o.Pending, o.NextAnnounce = true, now
	}
	return o
}

// FAPPQuery implements rpcapi.FAPPNode. A query within the followed
// regions (or LocalOnly) is answered from the index under the FAPP lock
// alone: it never reaches the node loop and sends nothing.
func (n *Node) FAPPQuery(ctx context.Context, p rpcapi.FAPPQueryParams) (rpcapi.FAPPQueryResult, error) {
	q, err := p.Parse()
	if err != nil {
		return rpcapi.FAPPQueryResult{}, apiErr(err)
	}
	f := n.fapp
	now := n.now()
	f.mu.Lock()
	local := true
	for _, r := range regionsOfPrefix(q.PLZPrefix) {
		local = local && f.following(r)
	}
	if local || p.LocalOnly {
		res, err := f.idx.Query(q, now)
		out := rpcapi.FAPPQueryResult{Matches: f.matchesLocked(res), Source: "local", Complete: local}
		f.mu.Unlock()
		return out, apiErr(err)
	}
	f.mu.Unlock()
	res, answers, err := f.remoteQuery(ctx, q, 0)
	if err != nil {
		return rpcapi.FAPPQueryResult{}, apiErr(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return rpcapi.FAPPQueryResult{Matches: f.matchesLocked(res), Source: "relays", Complete: answers > 0}, nil
}

func (f *fappNode) matchesLocked(res []fapp.Result) []rpcapi.FAPPMatch {
	out := []rpcapi.FAPPMatch{}
	for _, r := range res {
		a := r.Announce
		m := rpcapi.FAPPMatch{Ref: r.Ref().String(), Therapist: a.Therapist.String(), Zertifiziert: r.Credentialed,
			PLZ: a.PLZ.String(), Slot: rpcapi.FAPPSlotOf(r.Slot), Expires: a.Expires}
		m.Slot.Start = r.Start
		prof := fapp.Profile{}
		if r.Profile != nil {
			prof = *r.Profile
			m.Berufsgruppe = r.Profile.Credential.Berufsgruppe.String()
		}
		pp := rpcapi.FAPPProfileOf(*a, prof)
		m.Name, m.Verfahren, m.Kostentraeger, m.Altersgruppen = pp.Name, pp.Verfahren, pp.Kostentraeger, pp.Altersgruppen
		m.Sprachen, m.Geschlecht, m.BarrierefreiZugang, m.BarrierefreiWC = pp.Sprachen, pp.Geschlecht, pp.BarrierefreiZugang, pp.BarrierefreiWC
		m.Warteliste, m.Schwerpunkte = pp.Warteliste, pp.Schwerpunkte
		out = append(out, m)
	}
	return out
}

// FAPPReserve implements rpcapi.FAPPNode.
func (n *Node) FAPPReserve(ctx context.Context, p rpcapi.FAPPReserveParams) (rpcapi.FAPPReservation, error) {
	ref, err := rpcapi.ParseFAPPSlotRef(p.Slot)
	if err != nil {
		return rpcapi.FAPPReservation{}, apiErr(err)
	}
	f := n.fapp
	r, err := f.reserve(ctx, ref, p.Start.UTC(), fapp.RequestOptions{Kontakt: p.Kontakt, PTV11: p.PTV11, StampBits: uint8(p.StampBits)}, n.now())
	var res rpcapi.FAPPReservation
	if err == nil {
		f.mu.Lock()
		res = f.patientAPILocked(r)
		f.mu.Unlock()
	}
	if err != nil {
		return res, apiErr(err)
	}
	f.publishEvents([]rpcapi.Event{{Kind: rpcapi.EventFAPPReservation, ID: res.ID, FAPPReservation: &res}})
	return res, n.fappSend(ctx, false)
}

// FAPPReservations implements rpcapi.FAPPNode.
func (n *Node) FAPPReservations(ctx context.Context, p rpcapi.FAPPReservationsParams) ([]rpcapi.FAPPReservation, error) {
	if err := n.closed(); err != nil { // a closed node answers nothing
		return nil, err
	}
	f := n.fapp
	f.mu.Lock()
	defer f.mu.Unlock()
	out := []rpcapi.FAPPReservation{}
	keep := func(r rpcapi.FAPPReservation) {
		if len(p.States) == 0 || slices.Contains(p.States, r.State) {
			out = append(out, r)
		}
	}
	if p.Role != rpcapi.FAPPRoleTherapist {
		f.patMu.Lock()
		list := f.patient.List()
		f.patMu.Unlock()
		for _, r := range list {
			keep(f.patientAPILocked(r))
		}
	}
	if p.Role != rpcapi.FAPPRolePatient {
		for _, r := range f.book.List() {
			keep(f.therapistAPILocked(r))
		}
	}
	return out, nil
}

// FAPPRespond implements rpcapi.FAPPNode.
func (n *Node) FAPPRespond(ctx context.Context, p rpcapi.FAPPRespondParams) (rpcapi.FAPPReservation, error) {
	id, err := fapp.ParseRequestID(p.ID)
	if err != nil {
		return rpcapi.FAPPReservation{}, apiErr(err)
	}
	now := n.now()
	until := p.Until
	if p.Action == rpcapi.FAPPHold && until.IsZero() {
		until = now.Add(defaultHold)
	}
	return n.fappDecide(ctx, id, p.Action, p.Nachricht, until, now)
}

func (n *Node) fappDecide(ctx context.Context, id fapp.RequestID, action, note string, until, now time.Time) (rpcapi.FAPPReservation, error) {
	f := n.fapp
	f.mu.Lock()
	if _, err := f.book.Get(id); err != nil {
		f.mu.Unlock()
		return rpcapi.FAPPReservation{}, fmt.Errorf("%w: no reservation %v for this node's slots", rpcapi.ErrNotFound, id)
	}
	r, err := f.respondLocked(id, action, note, until, now)
	res := f.therapistAPILocked(r)
	f.mu.Unlock()
	if err != nil {
		return res, apiErr(err)
	}
	f.publishEvents([]rpcapi.Event{{Kind: rpcapi.EventFAPPReservation, ID: res.ID, FAPPReservation: &res}})
	f.poke()
	return res, n.fappSend(ctx, false)
}

// FAPPCancel implements rpcapi.FAPPNode: the patient's or the therapist's
// cancel, whichever side this node has the reservation on.
func (n *Node) FAPPCancel(ctx context.Context, p rpcapi.FAPPCancelParams) (rpcapi.FAPPReservation, error) {
	id, err := fapp.ParseRequestID(p.ID)
	if err != nil {
		return rpcapi.FAPPReservation{}, apiErr(err)
	}
	now := n.now()
	f := n.fapp
	f.mu.Lock()
	f.patMu.Lock()
	_, err = f.patient.Get(id)
	f.patMu.Unlock()
	if err != nil {
		f.mu.Unlock()
		return n.fappDecide(ctx, id, decideCancel, "", time.Time{}, now)
	}
	r, err := f.cancelLocked(id, now)
	res := f.patientAPILocked(r)
	f.mu.Unlock()
	if err != nil {
		return res, apiErr(err)
	}
	f.publishEvents([]rpcapi.Event{{Kind: rpcapi.EventFAPPReservation, ID: res.ID, FAPPReservation: &res}})
	return res, n.fappSend(ctx, false)
}

// FAPPFollow implements rpcapi.FAPPNode.
func (n *Node) FAPPFollow(ctx context.Context, regions []string) (rpcapi.FAPPRegions, error) {
	return n.fappFollow(ctx, regions, true)
}

// FAPPUnfollow implements rpcapi.FAPPNode. Regions the configuration
// follows stay followed.
func (n *Node) FAPPUnfollow(ctx context.Context, regions []string) (rpcapi.FAPPRegions, error) {
	return n.fappFollow(ctx, regions, false)
}

func (n *Node) fappFollow(ctx context.Context, regions []string, on bool) (rpcapi.FAPPRegions, error) {
	var rs []fapp.Region
	for _, s := range regions {
		r, err := fapp.ParseRegion(s)
		if err != nil {
			return rpcapi.FAPPRegions{}, apiErr(err)
		}
		rs = append(rs, r)
	}
	f := n.fapp
	f.mu.Lock()
	b := store.FAPPBatch{Put: map[string][]byte{}}
	var fresh []fapp.Region
	for _, r := range rs {
		if on && !f.following(r) {
			fresh = append(fresh, r)
		}
		if on {
			f.followAPI[r] = true
			b.Put[followKey(r)] = []byte{1}
		} else {
			delete(f.followAPI, r)
			b.Delete = append(b.Delete, followKey(r))
		}
	}
	err := f.write(b)
	f.mu.Unlock()
	if err != nil {
		return rpcapi.FAPPRegions{}, err
	}
	if err := n.fappSend(ctx, true); err != nil {
		return rpcapi.FAPPRegions{}, err
	}
	for _, r := range fresh {
		// In the background: the answers take a few seconds.
		n.bg.Go(func() {
			sctx, cancel := context.WithTimeout(n.ctx, time.Minute)
			defer cancel()
			f.syncRegion(sctx, r)
		})
	}
	return n.FAPPRegions(ctx)
}

// FAPPRegions implements rpcapi.FAPPNode.
func (n *Node) FAPPRegions(ctx context.Context) (rpcapi.FAPPRegions, error) {
	if err := n.closed(); err != nil { // a closed node answers nothing
		return rpcapi.FAPPRegions{}, err
	}
	f := n.fapp
	now := n.now()
	f.mu.Lock()
	defer f.mu.Unlock()
	out := rpcapi.FAPPRegions{Relay: f.relay, Followed: []rpcapi.FAPPRegion{}}
	for _, r := range fapp.Regions() {
		if !f.following(r) || (f.relay && f.idx.RegionLen(r) == 0 && !f.followCfg[r] && !f.followAPI[r] && (f.template == nil || f.template.Region() != r)) {
			continue
		}
		reg := rpcapi.FAPPRegion{Region: r.String(), Announces: f.idx.RegionLen(r)}
		for _, a := range f.idx.Announces(r) {
			for _, s := range a.Slots {
				if s.Status == fapp.SlotFrei && !a.Expired(now) {
					reg.Slots++
				}
			}
		}
		out.Followed = append(out.Followed, reg)
	}
	return out, nil
}

// FAPPCredentialImport implements rpcapi.FAPPNode.
func (n *Node) FAPPCredentialImport(ctx context.Context, credential []byte) (rpcapi.FAPPCredentialStatus, error) {
	f := n.fapp
	now := n.now()
	f.mu.Lock()
	_, err := f.importCredentialLocked(credential, now)
	st := f.credentialStatusLocked(now)
	f.mu.Unlock()
	return st, apiErr(err)
}

// FAPPCredentialStatus implements rpcapi.FAPPNode.
func (n *Node) FAPPCredentialStatus(ctx context.Context) (rpcapi.FAPPCredentialStatus, error) {
	if err := n.closed(); err != nil { // a closed node answers nothing
		return rpcapi.FAPPCredentialStatus{}, err
	}
	f := n.fapp
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.credentialStatusLocked(n.now()), nil
}

func (f *fappNode) credentialStatusLocked(now time.Time) rpcapi.FAPPCredentialStatus {
	var verr error
	if f.credential != nil {
		verr = f.trust.Verify(f.credential, now)
	}
	return rpcapi.FAPPCredentialStatusOf(f.n.id.Compact(), f.credential, verr)
}

// FAPPIssuers implements rpcapi.FAPPNode.
func (n *Node) FAPPIssuers(ctx context.Context) ([]rpcapi.FAPPIssuer, error) {
	if err := n.closed(); err != nil { // a closed node answers nothing
		return nil, err
	}
	f := n.fapp
	f.mu.Lock()
	defer f.mu.Unlock()
	out := []rpcapi.FAPPIssuer{}
	for _, k := range f.trust.Issuers() {
		out = append(out, rpcapi.FAPPIssuerOf(k, f.trust.Revocation(k.ID())))
	}
	return out, nil
}

// FAPPRevocationImport implements rpcapi.FAPPNode: the list is applied
// here and broadcast on the national channel, where every node that
// trusts the issuer applies it too.
func (n *Node) FAPPRevocationImport(ctx context.Context, revocation []byte) (rpcapi.FAPPIssuer, error) {
	rv, err := fapp.ParseRevocation(revocation)
	if err != nil {
		return rpcapi.FAPPIssuer{}, apiErr(err)
	}
	f := n.fapp
	now := n.now()
	f.mu.Lock()
	if err := f.trust.ApplyRevocation(rv); err != nil {
		f.mu.Unlock()
		if errors.Is(err, fapp.ErrUntrustedIssuer) {
			return rpcapi.FAPPIssuer{}, fmt.Errorf("%w: %v (add the issuer to fapp.trusted_issuers)", rpcapi.ErrRefused, err)
		}
		return rpcapi.FAPPIssuer{}, apiErr(err)
	}
	f.idx.Prune(now)
	err = f.write(store.FAPPBatch{Put: map[string][]byte{revocationKey(rv.Issuer): revocation}})
	var is rpcapi.FAPPIssuer
	for _, k := range f.trust.Issuers() {
		if k.ID() == rv.Issuer {
			is = rpcapi.FAPPIssuerOf(k, rv)
		}
	}
	f.queue(fappOut{channel: nationalKey(), body: fapp.AppendBroadcast(nil, regionRevocation, revocation)})
	f.mu.Unlock()
	if err != nil {
		return is, err
	}
	return is, n.fappSend(ctx, false)
}

// patientAPILocked is a patient-side reservation as the API shows it.
func (f *fappNode) patientAPILocked(r fapp.PatientReservation) rpcapi.FAPPReservation {
	out := rpcapi.FAPPReservation{ID: r.Request.ID.String(), Role: rpcapi.FAPPRolePatient, Slot: r.Request.Slot.String(),
		State: r.State.String(), Created: r.Request.Created, Updated: r.Updated, Start: r.Request.Start,
		Kontakt: r.Request.Kontakt, PTV11: r.Request.PTV11, Nachricht: r.Nachricht}
	if r.State == fapp.Gehalten {
		out.Expires = r.HoldUntil
	}
	if r.Confirmation != nil && r.Confirmation.Verify() == nil {
		out.Signed = true
	}
	f.detailsLocked(&out, r.Request.Slot, r.Request.Start)
	return out
}

// therapistAPILocked is a therapist-side reservation as the API shows it.
func (f *fappNode) therapistAPILocked(r fapp.Reservation) rpcapi.FAPPReservation {
	out := rpcapi.FAPPReservation{ID: r.Request.ID.String(), Role: rpcapi.FAPPRoleTherapist, Slot: r.Request.Slot.String(),
		State: r.State.String(), Created: r.Received, Updated: r.Updated, Start: r.Request.Start,
		Kontakt: r.Request.Kontakt, PTV11: r.Request.PTV11}
	switch r.State {
	case fapp.Gehalten:
		out.Expires = r.HoldUntil
	case fapp.Angefragt:
		out.Expires = r.Request.Created.Add(fapp.DefaultRequestTTL)
	}
	if f.profile != nil {
		out.TherapistName = f.profile.Name
	}
	for _, s := range f.pub.Slots() {
		if s.ID == r.Request.Slot.Slot && offers(s, r.Request.Start) {
			d := rpcapi.FAPPSlotOf(s)
			out.Details = &d
		}
	}
	return out
}

func (f *fappNode) detailsLocked(out *rpcapi.FAPPReservation, ref fapp.SlotRef, start time.Time) {
	a, p := f.idx.Get(ref.Therapist), f.idx.Profile(ref.Therapist)
	if e := f.remote[ref.Therapist]; e != nil {
		if a == nil {
			a = e.a
		}
		if p == nil {
			p = e.p
		}
	}
	if p != nil {
		out.TherapistName = p.Name
	}
	if a != nil {
		if s, ok := findSlot(a, ref.Slot); ok && offers(s, start) {
			d := rpcapi.FAPPSlotOf(s)
			out.Details = &d
		}
	}
}

// editable refuses to replace a slot someone holds or has: the patient's
// reservation names its time, which an edit would move from under them.
// Answer the request first (decline or cancel), or withdraw the slot.
func editable(s fapp.Slot) error {
	if s.Status != fapp.SlotFrei {
		return fmt.Errorf("%w: slot %d is %v: answer or cancel its reservation first, or withdraw it", rpcapi.ErrRefused, s.ID, s.Status)
	}
	return nil
}
