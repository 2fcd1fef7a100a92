package rpcapi

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"meshd.dev/meshd/fapp"
	"meshd.dev/meshd/protocol"
)

// fakeFAPP is the fake node's FAPP part: one node that is therapist and
// patient at once. Its own slots are its whole index, a reservation of an
// own slot creates the patient's and the therapist's record, and state
// changes go through fapp's real state machine and trust store, so the
// refusals the API reports are the ones the daemon will report.
type fakeFAPP struct {
	me        protocol.CompactIdentity
	profile   *FAPPProfile
	profSeq   uint32
	slots     []FAPPSlot
	nextSlot  uint16
	seq       uint32
	withdrawn bool
	followed  map[string]bool
	cred      *fapp.Credential
	trust     *fapp.TrustStore
	res       []*FAPPReservation // both roles
	nextRes   int
}

func newFakeFAPP() fakeFAPP {
	var me protocol.CompactIdentity
	for i := range me.SigningKey {
		me.SigningKey[i] = 0xaa
		me.KEMKeyHash[i] = 0xbb
	}
	issuer, _ := fapp.ParseIssuerKey(exampleIssuerKey)
	return fakeFAPP{me: me, followed: map[string]bool{}, trust: fapp.NewTrustStore(issuer)}
}

// exampleIssuerKey is the public key of the issuer whose seed is 32 bytes
// of 7: it signed the credential and revocation list of the examples.
const exampleIssuerKey = "ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c"

func (n *fakeNode) therapist() string { return fapp.TherapistKeyOf(n.fa.me).String() }

func (n *fakeNode) offerLocked() FAPPOffer {
	o := FAPPOffer{Therapist: n.therapist(), Slots: slices.Clone(n.fa.slots), Sequence: n.fa.seq, Withdrawn: n.fa.withdrawn}
	if n.fa.seq > 0 {
		o.Published = n.started
		o.Expires = n.started.Add(fapp.MaxAnnounceLifetime)
	}
	return o
}

func (n *fakeNode) profileLocked() FAPPProfileInfo {
	info := FAPPProfileInfo{Therapist: n.therapist(), Profile: n.fa.profile, Sequence: n.fa.profSeq}
	if n.fa.profile != nil {
		info.Updated = n.started
	}
	return info
}

func (n *fakeNode) FAPPProfileGet(ctx context.Context) (FAPPProfileInfo, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.profileLocked(), n.check(ctx)
}

func (n *fakeNode) FAPPProfileSet(ctx context.Context, p FAPPProfile) (FAPPProfileInfo, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.check(ctx); err != nil {
		return FAPPProfileInfo{}, err
	}
	if _, _, err := p.Parse(); err != nil {
		return FAPPProfileInfo{}, fmt.Errorf("fake: server let through %v: %w", err, ErrInvalidParams)
	}
	n.fa.profile = &p
	n.fa.profSeq++
	return n.profileLocked(), nil
}

func (n *fakeNode) FAPPPublish(ctx context.Context, p FAPPPublishParams) (FAPPOffer, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.check(ctx); err != nil {
		return FAPPOffer{}, err
	}
	if n.fa.profile == nil {
		return FAPPOffer{}, fmt.Errorf("no profile yet: set one with fapp.profile: %w", ErrRefused)
	}
	slots := slices.Clone(n.fa.slots)
	for _, s := range p.Slots {
		if !slices.Contains(n.fa.profile.Verfahren, strings.ToUpper(s.Verfahren)) {
			return FAPPOffer{}, fmt.Errorf("slot Verfahren %s is not in the profile: %w", s.Verfahren, ErrInvalidParams)
		}
		fs, _ := s.Parse()
		api := FAPPSlotOf(fs)
		if s.ID == 0 {
			n.fa.nextSlot++
			api.ID = n.fa.nextSlot
			slots = append(slots, api)
			continue
		}
		i := slices.IndexFunc(slots, func(o FAPPSlot) bool { return o.ID == s.ID })
		if i < 0 {
			return FAPPOffer{}, fmt.Errorf("slot %d: %w", s.ID, ErrNotFound)
		}
		slots[i] = api
	}
	if len(slots) > fapp.MaxSlots {
		return FAPPOffer{}, fmt.Errorf("%d slots, at most %d: %w", len(slots), fapp.MaxSlots, ErrRefused)
	}
	n.fa.slots, n.fa.withdrawn = slots, false
	n.fa.seq++
	if r := n.fa.profile.PLZ[:2]; n.fa.followed[r] {
		n.publishLocked(Event{Kind: EventFAPPIndex, FAPPRegion: r})
	}
	return n.offerLocked(), nil
}

func (n *fakeNode) FAPPWithdraw(ctx context.Context, p FAPPWithdrawParams) (FAPPOffer, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.check(ctx); err != nil {
		return FAPPOffer{}, err
	}
	if len(p.Slots) == 0 {
		n.fa.slots, n.fa.withdrawn = nil, true
		n.fa.seq++
		return n.offerLocked(), nil
	}
	for _, id := range p.Slots {
		if !slices.ContainsFunc(n.fa.slots, func(s FAPPSlot) bool { return s.ID == id }) {
			return FAPPOffer{}, fmt.Errorf("slot %d: %w", id, ErrNotFound)
		}
	}
	n.fa.slots = slices.DeleteFunc(n.fa.slots, func(s FAPPSlot) bool { return slices.Contains(p.Slots, s.ID) })
	n.fa.seq++
	return n.offerLocked(), nil
}

func (n *fakeNode) FAPPSlots(ctx context.Context) (FAPPOffer, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.offerLocked(), n.check(ctx)
}

func (n *fakeNode) FAPPQuery(ctx context.Context, p FAPPQueryParams) (FAPPQueryResult, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.check(ctx); err != nil {
		return FAPPQueryResult{}, err
	}
	q, err := p.Parse()
	if err != nil {
		return FAPPQueryResult{}, fmt.Errorf("fake: server let through %v: %w", err, ErrInvalidParams)
	}
	res := FAPPQueryResult{Source: "local", Complete: len(q.PLZPrefix) >= 2 && n.fa.followed[q.PLZPrefix[:2]]}
	prof := n.fa.profile
	if prof == nil || n.fa.withdrawn || !strings.HasPrefix(prof.PLZ, q.PLZPrefix) {
		return res, nil
	}
	a, _, _ := prof.Parse()
	if !q.Kostentraeger.Empty() && !q.Kostentraeger.Intersects(a.Kostentraeger) {
		return res, nil
	}
	for _, s := range n.fa.slots {
		fs, _ := s.Parse()
		if fs.Status != fapp.SlotFrei || (!q.Verfahren.Empty() && !q.Verfahren.Has(fs.Verfahren)) {
			continue
		}
		res.Matches = append(res.Matches, FAPPMatch{
			Ref: FormatFAPPSlotRef(fs.Ref(fapp.TherapistKeyOf(n.fa.me))), Therapist: n.therapist(), Name: prof.Name,
			PLZ: prof.PLZ, Verfahren: FAPPNames(a.Verfahren), Kostentraeger: FAPPNames(a.Kostentraeger),
			Altersgruppen: FAPPNames(a.Altersgruppen), Slot: s, Expires: n.started.Add(fapp.MaxAnnounceLifetime),
		})
	}
	return res, nil
}

func (n *fakeNode) FAPPReserve(ctx context.Context, p FAPPReserveParams) (FAPPReservation, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.check(ctx); err != nil {
		return FAPPReservation{}, err
	}
	ref, err := ParseFAPPSlotRef(p.Slot)
	if err != nil {
		return FAPPReservation{}, fmt.Errorf("fake: server let through %v: %w", err, ErrInvalidParams)
	}
	i := slices.IndexFunc(n.fa.slots, func(s FAPPSlot) bool { return s.ID == ref.Slot })
	if ref.Therapist != fapp.TherapistKeyOf(n.fa.me) || i < 0 {
		return FAPPReservation{}, fmt.Errorf("slot %s: no such slot in the index: %w", p.Slot, ErrNotFound)
	}
	if n.fa.slots[i].Status != fapp.SlotFrei.String() {
		return FAPPReservation{}, fmt.Errorf("slot %s is %s: %w", p.Slot, n.fa.slots[i].Status, ErrRefused)
	}
	n.fa.nextRes++
	details := n.fa.slots[i]
	r := FAPPReservation{
		ID: fmt.Sprintf("%032x", n.fa.nextRes), Slot: p.Slot, State: fapp.Angefragt.String(),
		Created: n.started, Updated: n.started, Details: &details, Kontakt: p.Kontakt, PTV11: p.PTV11,
	}
	pat, th := r, r
	pat.Role, th.Role = FAPPRolePatient, FAPPRoleTherapist
	n.fa.res = append(n.fa.res, &pat, &th)
	n.publishLocked(Event{Kind: EventFAPPReservation, FAPPReservation: &th})
	return pat, nil
}

func (n *fakeNode) FAPPReservations(ctx context.Context, p FAPPReservationsParams) ([]FAPPReservation, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.check(ctx); err != nil {
		return nil, err
	}
	var out []FAPPReservation
	for _, r := range n.fa.res {
		if (p.Role == "" || p.Role == r.Role) && (len(p.States) == 0 || slices.ContainsFunc(p.States, func(s string) bool { return strings.EqualFold(s, r.State) })) {
			out = append(out, *r)
		}
	}
	slices.SortStableFunc(out, func(a, b FAPPReservation) int { return cmp.Compare(b.ID, a.ID) })
	return out, nil
}

// transitionLocked moves every record of reservation id (both roles) on ev.
func (n *fakeNode) transitionLocked(id, role string, ev fapp.Event, note string) (FAPPReservation, error) {
	var mine *FAPPReservation
	for _, r := range n.fa.res {
		if r.ID == id && (role == "" || r.Role == role) {
			mine = r
			break
		}
	}
	if mine == nil {
		return FAPPReservation{}, fmt.Errorf("reservation %s: %w", id, ErrNotFound)
	}
	from, _ := fapp.ParseReservationState(mine.State)
	to, err := fapp.Transition(from, ev)
	if err != nil {
		return FAPPReservation{}, fmt.Errorf("%v: %w", err, ErrRefused)
	}
	for _, r := range n.fa.res {
		if r.ID == id {
			r.State, r.Nachricht = to.String(), note
			r.Signed = to == fapp.Bestaetigt
		}
	}
	n.setSlotStatusLocked(mine.Slot, to)
	for _, r := range n.fa.res {
		if r.ID == id && r.Role != mine.Role {
			ev := *r
			n.publishLocked(Event{Kind: EventFAPPReservation, FAPPReservation: &ev})
		}
	}
	return *mine, nil
}

func (n *fakeNode) setSlotStatusLocked(ref string, st fapp.ReservationState) {
	r, _ := ParseFAPPSlotRef(ref)
	for i := range n.fa.slots {
		if n.fa.slots[i].ID != r.Slot {
			continue
		}
		switch {
		case st == fapp.Bestaetigt:
			n.fa.slots[i].Status = fapp.SlotVergeben.String()
		case st == fapp.Gehalten:
			n.fa.slots[i].Status = fapp.SlotGehalten.String()
		case st.Terminal():
			n.fa.slots[i].Status = fapp.SlotFrei.String()
		}
	}
}

func (n *fakeNode) FAPPRespond(ctx context.Context, p FAPPRespondParams) (FAPPReservation, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.check(ctx); err != nil {
		return FAPPReservation{}, err
	}
	ev := map[string]fapp.Event{FAPPConfirm: fapp.EventConfirm, FAPPDecline: fapp.EventDecline, FAPPHold: fapp.EventHold}[p.Action]
	return n.transitionLocked(p.ID, FAPPRoleTherapist, ev, p.Nachricht)
}

func (n *fakeNode) FAPPCancel(ctx context.Context, p FAPPCancelParams) (FAPPReservation, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.check(ctx); err != nil {
		return FAPPReservation{}, err
	}
	return n.transitionLocked(p.ID, FAPPRolePatient, fapp.EventCancelPatient, "")
}

func (n *fakeNode) regionsLocked() FAPPRegions {
	var r FAPPRegions
	for reg := range n.fa.followed {
		r.Followed = append(r.Followed, FAPPRegion{Region: reg})
	}
	slices.SortFunc(r.Followed, func(a, b FAPPRegion) int { return cmp.Compare(a.Region, b.Region) })
	return r
}

func (n *fakeNode) FAPPFollow(ctx context.Context, regions []string) (FAPPRegions, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, r := range regions {
		n.fa.followed[r] = true
	}
	return n.regionsLocked(), n.check(ctx)
}

func (n *fakeNode) FAPPUnfollow(ctx context.Context, regions []string) (FAPPRegions, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, r := range regions {
		delete(n.fa.followed, r)
	}
	return n.regionsLocked(), n.check(ctx)
}

func (n *fakeNode) FAPPRegions(ctx context.Context) (FAPPRegions, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.regionsLocked(), n.check(ctx)
}

func (n *fakeNode) credStatusLocked() FAPPCredentialStatus {
	var err error
	if n.fa.cred != nil {
		err = n.fa.trust.Verify(n.fa.cred, n.started)
	}
	return FAPPCredentialStatusOf(n.fa.me, n.fa.cred, err)
}

func (n *fakeNode) FAPPCredentialImport(ctx context.Context, raw []byte) (FAPPCredentialStatus, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.check(ctx); err != nil {
		return FAPPCredentialStatus{}, err
	}
	c, err := fapp.ParseCredential(raw)
	if err != nil {
		return FAPPCredentialStatus{}, fmt.Errorf("fake: server let through %v: %w", err, ErrInvalidParams)
	}
	if c.Therapist != n.fa.me {
		return FAPPCredentialStatus{}, fmt.Errorf("the credential is for other keys than this node's: %w", ErrInvalidParams)
	}
	n.fa.cred = c
	return n.credStatusLocked(), nil
}

func (n *fakeNode) FAPPCredentialStatus(ctx context.Context) (FAPPCredentialStatus, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.credStatusLocked(), n.check(ctx)
}

func (n *fakeNode) FAPPIssuers(ctx context.Context) ([]FAPPIssuer, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []FAPPIssuer
	for _, k := range n.fa.trust.Issuers() {
		out = append(out, FAPPIssuerOf(k, n.fa.trust.Revocation(k.ID())))
	}
	return out, n.check(ctx)
}

func (n *fakeNode) FAPPRevocationImport(ctx context.Context, raw []byte) (FAPPIssuer, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.check(ctx); err != nil {
		return FAPPIssuer{}, err
	}
	r, err := fapp.ParseRevocation(raw)
	if err != nil {
		return FAPPIssuer{}, fmt.Errorf("fake: server let through %v: %w", err, ErrInvalidParams)
	}
	if err := n.fa.trust.ApplyRevocation(r); err != nil {
		if errors.Is(err, fapp.ErrStale) || errors.Is(err, fapp.ErrUntrustedIssuer) || errors.Is(err, fapp.ErrBadSignature) {
			return FAPPIssuer{}, fmt.Errorf("%v: %w", err, ErrRefused)
		}
		return FAPPIssuer{}, err
	}
	for _, k := range n.fa.trust.Issuers() {
		if k.ID() == r.Issuer {
			return FAPPIssuerOf(k, r), nil
		}
	}
	return FAPPIssuer{}, errors.New("fake: applied a list of an unknown issuer")
}
