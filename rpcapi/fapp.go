package rpcapi

import (
	"context"
	"errors"
	"time"
)

// FAPP methods: the Free Appointment Propagation Protocol (docs/fapp.md).
// Therapists announce free slots, patients search and reserve them.
const (
	MethodFAPPPublish          = "fapp.publish"
	MethodFAPPWithdraw         = "fapp.withdraw"
	MethodFAPPSlots            = "fapp.slots"
	MethodFAPPProfile          = "fapp.profile"
	MethodFAPPQuery            = "fapp.query"
	MethodFAPPReserve          = "fapp.reserve"
	MethodFAPPReservations     = "fapp.reservations"
	MethodFAPPRespond          = "fapp.respond"
	MethodFAPPCancel           = "fapp.cancel"
	MethodFAPPFollow           = "fapp.follow"
	MethodFAPPUnfollow         = "fapp.unfollow"
	MethodFAPPRegions          = "fapp.regions"
	MethodFAPPCredentialImport = "fapp.credential.import"
	MethodFAPPCredentialStatus = "fapp.credential.status"
	MethodFAPPIssuers          = "fapp.issuers"
	MethodFAPPRevocationImport = "fapp.revocation.import"
)

// FAPP event kinds on the msg.subscribe stream.
const (
	// EventFAPPReservation: a reservation this node takes part in (as
	// patient or therapist) was created or changed state (FAPPReservation
	// set).
	EventFAPPReservation = "fapp-reservation"
	// EventFAPPIndex: the node's index of a followed region changed (an
	// announce arrived, replacing or withdrawing an older one, or a
	// therapist's profile arrived); FAPPRegion names the region. Apps re-run their query on it
	// instead of polling. Events of one region may be coalesced.
	EventFAPPIndex = "fapp-index"
)

// FAPPNode is what the fapp.* methods need from the daemon. Besides the
// methods, the node publishes EventFAPPReservation and EventFAPPIndex
// events to subscribers (Node.Subscribe). The server
// answers the fapp methods only when its Node also implements FAPPNode
// (otherwise they are "method not found" and not in rpc.discover).
//
// The server validates every parameter before the node sees it (enum names,
// PLZ, limits, impossible combinations), so the node may convert with the
// Parse methods of the param types (FAPPSlot.Parse, FAPPQueryParams.Parse,
// ...) and treat a failure there as a bug. Errors wrap ErrInvalidParams
// (a value the node rejects, e.g. a slot starting in the past by its
// clock), ErrNotFound (unknown reservation or slot), ErrRefused (a state
// change the reservation's state forbids, no profile or credential yet, a
// full index) or ErrUnavailable.
type FAPPNode interface {
	// FAPPProfileGet returns the node's own therapist profile.
	FAPPProfileGet(ctx context.Context) (FAPPProfileInfo, error)
	// FAPPProfileSet replaces the node's own therapist profile; the next
	// announce carries it.
	FAPPProfileSet(ctx context.Context, p FAPPProfile) (FAPPProfileInfo, error)
	// FAPPPublish adds or updates own slots and publishes a new announce
	// (within a second, or in the next batch epoch, see FAPPOffer.Pending).
	FAPPPublish(ctx context.Context, p FAPPPublishParams) (FAPPOffer, error)
	// FAPPWithdraw removes the given own slots, or all and the whole offer
	// when p.Slots is empty, and announces the change.
	FAPPWithdraw(ctx context.Context, p FAPPWithdrawParams) (FAPPOffer, error)
	// FAPPSlots returns the node's own offer.
	FAPPSlots(ctx context.Context) (FAPPOffer, error)
	FAPPQuery(ctx context.Context, q FAPPQueryParams) (FAPPQueryResult, error)
	// FAPPReserve sends a reservation request, sealed to the slot's
	// therapist, and returns it in state ANGEFRAGT.
	FAPPReserve(ctx context.Context, p FAPPReserveParams) (FAPPReservation, error)
	FAPPReservations(ctx context.Context, p FAPPReservationsParams) ([]FAPPReservation, error)
	// FAPPRespond is the therapist's answer to a reservation request.
	FAPPRespond(ctx context.Context, p FAPPRespondParams) (FAPPReservation, error)
	// FAPPCancel cancels a reservation from either side.
	FAPPCancel(ctx context.Context, p FAPPCancelParams) (FAPPReservation, error)
	FAPPFollow(ctx context.Context, regions []string) (FAPPRegions, error)
	FAPPUnfollow(ctx context.Context, regions []string) (FAPPRegions, error)
	FAPPRegions(ctx context.Context) (FAPPRegions, error)
	// FAPPCredentialImport stores a license credential for the node's own
	// keys (the binary encoding, fapp.ParseCredential).
	FAPPCredentialImport(ctx context.Context, credential []byte) (FAPPCredentialStatus, error)
	FAPPCredentialStatus(ctx context.Context) (FAPPCredentialStatus, error)
	// FAPPIssuers lists the trusted credential issuers (configuration).
	FAPPIssuers(ctx context.Context) ([]FAPPIssuer, error)
	// FAPPRevocationImport applies an issuer's signed revocation list (the
	// binary encoding, fapp.ParseRevocation).
	FAPPRevocationImport(ctx context.Context, revocation []byte) (FAPPIssuer, error)
}

// ErrNotFound: the request names a reservation, slot or profile the node
// does not know. CodeNotFound.
var ErrNotFound = errors.New("not found")

// CodeNotFound is the code of ErrNotFound.
const CodeNotFound = -32006

// FAPPProfile is a therapist's public offer data: what every announce and
// the signed profile carry. Enum values are the upper-case German names
// (e.g. VERHALTENSTHERAPIE, GKV); the CLI accepts them in any case.
type FAPPProfile struct {
	// Name is the display name, at most 64 bytes of UTF-8.
	Name string `json:"name"`
	// PLZ is the practice's 5-digit postal code (never the street address).
	PLZ string `json:"plz"`
	// Verfahren are the procedures offered: VERHALTENSTHERAPIE,
	// TIEFENPSYCHOLOGISCH_FUNDIERT, ANALYTISCH, SYSTEMISCH.
	Verfahren []string `json:"verfahren"`
	// Kostentraeger are the accepted payers: GKV, PKV, BEIHILFE,
	// SELBSTZAHLER, KOSTENERSTATTUNG.
	Kostentraeger []string `json:"kostentraeger"`
	// Altersgruppen: ERWACHSENE, KINDER_JUGENDLICHE.
	Altersgruppen []string `json:"altersgruppen"`
	// Sprachen are ISO 639-1 codes of the languages of therapy ("de", "tr").
	Sprachen []string `json:"sprachen,omitempty"`
	// Geschlecht is the therapist's gender, WEIBLICH, MAENNLICH or DIVERS
	// ("" when not stated).
	Geschlecht string `json:"geschlecht,omitempty"`
	// BarrierefreiZugang: the practice has a barrier-free entrance.
	BarrierefreiZugang bool `json:"barrierefrei_zugang,omitempty"`
	// BarrierefreiWC: the practice has a barrier-free toilet.
	BarrierefreiWC bool `json:"barrierefrei_wc,omitempty"`
	// Warteliste: the waiting list is open.
	Warteliste bool `json:"warteliste,omitempty"`
	// Schwerpunkte are coarse focus areas ("Angst", "Trauma"), at most 8 of
	// at most 40 bytes.
	Schwerpunkte []string `json:"schwerpunkte,omitempty"`
}

// FAPPProfileParams are fapp.profile's parameters.
type FAPPProfileParams struct {
	// Set replaces the own profile; without it the call only reads it.
	Set *FAPPProfile `json:"set,omitempty"`
}

// FAPPProfileInfo is fapp.profile's result.
type FAPPProfileInfo struct {
	// Therapist is this node's therapist key (64 hex characters): the key
	// announces, slot references and reservations name it by.
	Therapist string `json:"therapist"`
	// Profile is the own profile; absent before the first set.
	Profile *FAPPProfile `json:"profile,omitempty"`
	// Sequence is the signed profile's sequence number (0 before the first set).
	Sequence uint32 `json:"sequence"`
	// Updated is when the profile was last set.
	Updated time.Time `json:"updated,omitzero"`
}

// FAPPSlot is one appointment or place a therapist offers.
type FAPPSlot struct {
	// ID identifies the slot among the therapist's slots (1 to 65535). In
	// fapp.publish, 0 adds a new slot (the node picks the ID) and an
	// existing ID replaces that slot, unless it is GEHALTEN or VERGEBEN
	// (refused: answer or cancel its reservation first). IDs are never
	// reused: a withdrawn slot's ID is refused, an ID above every ID the
	// node published adds a slot under it.
	ID uint16 `json:"id,omitempty"`
	// Terminart: SPRECHSTUNDE, AKUTBEHANDLUNG, PROBATORIK,
	// THERAPIEPLATZ_KZT, THERAPIEPLATZ_LZT, GRUPPE_GRUNDVERSORGUNG,
	// GRUPPENTHERAPIE.
	Terminart string `json:"terminart"`
	// Verfahren is one of the profile's Verfahren.
	Verfahren string `json:"verfahren"`
	// Setting: EINZEL, GRUPPE, MEHRPERSONEN (SYSTEMISCH only). Default
	// EINZEL, GRUPPE for group Terminarten.
	Setting string `json:"setting,omitempty"`
	// Modalitaet: PRAXIS (default) or VIDEO.
	Modalitaet string `json:"modalitaet,omitempty"`
	// Voraussetzung: KEINE (default), PTV11, SPRECHSTUNDE_ERFOLGT.
	Voraussetzung string `json:"voraussetzung,omitempty"`
	// Start is the first occurrence (whole minutes; RFC 3339, any zone).
	Start time.Time `json:"start"`
	// Dauer is the duration in minutes: 25, 50 or 100.
	Dauer int `json:"dauer"`
	// Woechentlich marks a weekly recurring place (therapy places, groups).
	Woechentlich bool `json:"woechentlich,omitempty"`
	// Bis is the last occurrence of a weekly slot.
	Bis time.Time `json:"bis,omitzero"`
	// Plaetze is the number of free seats of a group (1 to 14).
	Plaetze int `json:"plaetze,omitempty"`
	// Status: FREI, GEHALTEN, VERGEBEN. Set by the node; in fapp.publish
	// only FREI (or empty) is accepted.
	Status string `json:"status,omitempty"`
}

// FAPPPublishParams are fapp.publish's parameters.
type FAPPPublishParams struct {
	// Slots are added (ID 0) or replace the own slot with their ID. Empty:
	// announce the current offer again (after a profile change).
	Slots []FAPPSlot `json:"slots,omitempty"`
}

// FAPPWithdrawParams are fapp.withdraw's parameters.
type FAPPWithdrawParams struct {
	// Slots are the IDs of own slots to remove. Empty: withdraw the whole
	// offer (an announce without slots that replaces the last one).
	Slots []uint16 `json:"slots,omitempty"`
}

// FAPPOffer is the node's own offer: fapp.slots's, fapp.publish's and
// fapp.withdraw's result.
type FAPPOffer struct {
	// Therapist is this node's therapist key in hex.
	Therapist string `json:"therapist"`
	// Slots are the own slots with their IDs and status.
	Slots []FAPPSlot `json:"slots"`
	// Sequence is the sequence number of the latest announce (0: never
	// published).
	Sequence uint32 `json:"sequence"`
	// Published is when the latest announce went out.
	Published time.Time `json:"published,omitzero"`
	// Expires is when the latest announce expires (the node re-announces
	// before that).
	Expires time.Time `json:"expires,omitzero"`
	// Pending is true when a change waits to be announced: the
	// therapist's own edits go out within a second (a few per batch epoch),
	// slot status changes at the next batch epoch, so a reservation cannot
	// be timed from the announces.
	Pending bool `json:"pending,omitempty"`
	// NextAnnounce is when the pending change goes out.
	NextAnnounce time.Time `json:"next_announce,omitzero"`
	// Withdrawn is true when the offer was withdrawn.
	Withdrawn bool `json:"withdrawn,omitempty"`
}

// FAPPQueryParams are fapp.query's parameters. Every empty filter matches
// everything; a list matches a slot whose value is in it.
type FAPPQueryParams struct {
	// PLZPrefix is 1 to 5 digits of the practice PLZ ("1", "10", "104").
	// Privacy: the coarser, the less the query says about the asker; a
	// query within a followed region never leaves the node.
	PLZPrefix string `json:"plz_prefix"`
	// Verfahren filter, e.g. ["VERHALTENSTHERAPIE"].
	Verfahren []string `json:"verfahren,omitempty"`
	// Kostentraeger filter, e.g. ["GKV"].
	Kostentraeger []string `json:"kostentraeger,omitempty"`
	// Terminart filter, e.g. ["SPRECHSTUNDE"].
	Terminart []string `json:"terminart,omitempty"`
	// Altersgruppe filter: ERWACHSENE, KINDER_JUGENDLICHE.
	Altersgruppe []string `json:"altersgruppe,omitempty"`
	// Setting filter: EINZEL, GRUPPE, MEHRPERSONEN.
	Setting []string `json:"setting,omitempty"`
	// Modalitaet filter: PRAXIS, VIDEO.
	Modalitaet []string `json:"modalitaet,omitempty"`
	// Sprachen matches a therapist offering any of these ISO 639-1 codes.
	Sprachen []string `json:"sprachen,omitempty"`
	// Geschlecht filter: WEIBLICH, MAENNLICH, DIVERS.
	Geschlecht []string `json:"geschlecht,omitempty"`
	// BarrierefreiZugang requires a barrier-free entrance.
	BarrierefreiZugang bool `json:"barrierefrei_zugang,omitempty"`
	// BarrierefreiWC requires a barrier-free toilet.
	BarrierefreiWC bool `json:"barrierefrei_wc,omitempty"`
	// Zeitfenster are Europe/Berlin wall-clock windows, e.g. "mo-fr
	// 17:00-21:00" (days mo di mi do fr sa so; without days every day); a
	// slot matches when it starts in any of them. At most 8.
	Zeitfenster []string `json:"zeitfenster,omitempty"`
	// Fruehestens is the earliest start (default: now).
	Fruehestens time.Time `json:"fruehestens,omitzero"`
	// Spaetestens is the latest start.
	Spaetestens time.Time `json:"spaetestens,omitzero"`
	// NurZertifiziert keeps only therapists whose credential verifies with
	// the node's trusted issuers.
	NurZertifiziert bool `json:"nur_zertifiziert,omitempty"`
	// LocalOnly answers from the local index even when the prefix is
	// outside the followed regions: nothing leaves the node.
	LocalOnly bool `json:"local_only,omitempty"`
	// Limit caps the matches (default 100, at most 1000).
	Limit int `json:"limit,omitempty"`
}

// FAPPQueryResult is fapp.query's result.
type FAPPQueryResult struct {
	// Matches are the matching free slots, earliest start first.
	Matches []FAPPMatch `json:"matches"`
	// Source is "local" (answered from this node's index; nothing was sent)
	// or "relays" (asked FAPP relays anonymously, with a fresh query ID and
	// an ephemeral reply key).
	Source string `json:"source"`
	// Complete is false when the node does not follow the whole prefix and
	// no relay answered: the matches may miss slots.
	Complete bool `json:"complete"`
}

// FAPPMatch is one free slot a query found, with its therapist's offer.
type FAPPMatch struct {
	// Ref is the slot's reference, "<therapist key>/<slot ID>": what
	// fapp.reserve takes.
	Ref string `json:"ref"`
	// Therapist is the therapist key in hex.
	Therapist string `json:"therapist"`
	// Name is the therapist's display name (empty until the profile is
	// cached).
	Name string `json:"name,omitempty"`
	// Berufsgruppe is the profession the credential states.
	Berufsgruppe string `json:"berufsgruppe,omitempty"`
	// Zertifiziert is true when the therapist's credential verifies with
	// this node's trusted issuers.
	Zertifiziert bool `json:"zertifiziert"`
	// PLZ is the practice's postal code.
	PLZ string `json:"plz"`
	// Verfahren are the therapist's procedures.
	Verfahren []string `json:"verfahren"`
	// Kostentraeger are the payers the therapist accepts.
	Kostentraeger []string `json:"kostentraeger"`
	// Altersgruppen are the age groups the therapist treats.
	Altersgruppen []string `json:"altersgruppen"`
	// Sprachen are the languages of therapy.
	Sprachen []string `json:"sprachen,omitempty"`
	// Geschlecht is the therapist's gender, if stated.
	Geschlecht string `json:"geschlecht,omitempty"`
	// BarrierefreiZugang: barrier-free entrance.
	BarrierefreiZugang bool `json:"barrierefrei_zugang,omitempty"`
	// BarrierefreiWC: barrier-free toilet.
	BarrierefreiWC bool `json:"barrierefrei_wc,omitempty"`
	// Warteliste: the waiting list is open.
	Warteliste bool `json:"warteliste,omitempty"`
	// Schwerpunkte are the focus areas from the profile.
	Schwerpunkte []string `json:"schwerpunkte,omitempty"`
	// Slot is the slot itself.
	Slot FAPPSlot `json:"slot"`
	// Expires is when the announce the slot came in expires.
	Expires time.Time `json:"expires"`
}

// FAPPReserveParams are fapp.reserve's parameters. The request carries only
// what is given here, sealed end to end to the therapist; no node on the
// way can read it.
type FAPPReserveParams struct {
	// Slot is the slot reference from fapp.query, "<therapist key>/<slot ID>".
	Slot string `json:"slot"`
	// Start is the occurrence asked for, for a weekly place (default: its
	// first occurrence still ahead).
	Start time.Time `json:"start,omitzero"`
	// Kontakt is how the therapist reaches the patient (e-mail, phone):
	// what the patient chooses to give, at most 256 bytes.
	Kontakt string `json:"kontakt,omitempty"`
	// PTV11 is optional data of the patient's PTV 11 form (date,
	// recommendation), at most 1024 bytes.
	PTV11 string `json:"ptv11,omitempty"`
	// StampBits is the proof-of-work stamp to spend, in bits, when more
	// than the default 20 (at most 28; each bit doubles the minting time):
	// a therapist whose slot has many waiting requests refuses one with no
	// more work than the weakest (ABGELEHNT), and lets in one with more.
	StampBits int `json:"stamp_bits,omitempty"`
}

// FAPPReservationsParams are fapp.reservations's parameters.
type FAPPReservationsParams struct {
	// Role selects "patient" (own requests) or "therapist" (requests for
	// own slots); empty: both.
	Role string `json:"role,omitempty"`
	// States keeps reservations in these states; empty: all.
	States []string `json:"states,omitempty"`
}

// Reservation roles.
const (
	FAPPRolePatient   = "patient"
	FAPPRoleTherapist = "therapist"
)

// FAPPReservation is a reservation as this node sees it.
type FAPPReservation struct {
	// ID is the reservation's ID, 32 hex characters (random, chosen by the
	// patient's node).
	ID string `json:"id"`
	// Role is this node's part: "patient" or "therapist".
	Role string `json:"role"`
	// Slot is the slot reference, "<therapist key>/<slot ID>".
	Slot string `json:"slot"`
	// State: ANGEFRAGT, GEHALTEN, BESTAETIGT, ABGELEHNT, ABGELAUFEN,
	// STORNIERT_PATIENT, STORNIERT_THERAPEUT.
	State string `json:"state"`
	// Created is when the request was made (patient) or arrived (therapist).
	Created time.Time `json:"created"`
	// Updated is the last state change.
	Updated time.Time `json:"updated"`
	// Expires is when an ANGEFRAGT or GEHALTEN reservation lapses to
	// ABGELAUFEN.
	Expires time.Time `json:"expires,omitzero"`
	// Details is the slot as announced, when known and it still has the
	// occurrence reserved (a slot at another time under the same ID is
	// not the slot reserved: no details).
	Details *FAPPSlot `json:"details,omitempty"`
	// TherapistName is the therapist's display name, when known.
	TherapistName string `json:"therapist_name,omitempty"`
	// Start is the occurrence reserved.
	Start time.Time `json:"start,omitzero"`
	// Kontakt is the contact the patient gave (both sides see it; it
	// travels sealed to the therapist).
	Kontakt string `json:"kontakt,omitempty"`
	// PTV11 is the PTV 11 data the patient gave.
	PTV11 string `json:"ptv11,omitempty"`
	// Nachricht is the therapist's note with the answer (e.g. the address
	// with a confirmation).
	Nachricht string `json:"nachricht,omitempty"`
	// Signed is true for a BESTAETIGT reservation whose confirmation
	// carries a valid signature of the therapist.
	Signed bool `json:"signed,omitempty"`
}

// Therapist answers in fapp.respond.
const (
	FAPPConfirm = "confirm" // BESTAETIGT, signed by the therapist
	FAPPDecline = "decline" // ABGELEHNT
	FAPPHold    = "hold"    // GEHALTEN until Until
)

// FAPPRespondParams are fapp.respond's parameters.
type FAPPRespondParams struct {
	// ID is the reservation's ID.
	ID string `json:"id"`
	// Action is "confirm", "decline" or "hold".
	Action string `json:"action"`
	// Until is how long a "hold" lasts (default: the node's hold time).
	Until time.Time `json:"until,omitzero"`
	// Nachricht is an optional note to the patient, sealed to them (e.g.
	// the practice's address with a confirmation), at most 512 bytes.
	Nachricht string `json:"nachricht,omitempty"`
}

// FAPPCancelParams are fapp.cancel's parameters.
type FAPPCancelParams struct {
	// ID is the reservation's ID.
	ID string `json:"id"`
}

// FAPPRegionsParams are fapp.follow's and fapp.unfollow's parameters.
type FAPPRegionsParams struct {
	// Regions are 2-digit PLZ regions ("10", "01").
	Regions []string `json:"regions"`
}

// FAPPRegions is fapp.regions's (and fapp.follow's, fapp.unfollow's) result.
type FAPPRegions struct {
	// Relay is true when the node is a FAPP relay: it follows every region
	// and answers remote queries.
	Relay bool `json:"relay"`
	// Followed are the followed regions in ascending order.
	Followed []FAPPRegion `json:"followed"`
}

// FAPPRegion is one followed region.
type FAPPRegion struct {
	// Region is the 2-digit PLZ prefix.
	Region string `json:"region"`
	// Announces is the number of therapists' announces held for it.
	Announces int `json:"announces"`
	// Slots is the number of free slots in them.
	Slots int `json:"slots"`
}

// FAPPCredentialParams are fapp.credential.import's parameters.
type FAPPCredentialParams struct {
	// Credential is the credential's text form, fapp-credential:<base64url>,
	// as `fapp issuer issue` prints it.
	Credential string `json:"credential"`
}

// Credential states in FAPPCredentialStatus.Status.
const (
	FAPPCredMissing     = "missing"
	FAPPCredValid       = "valid"
	FAPPCredNotYetValid = "not-yet-valid"
	FAPPCredExpired     = "expired"
	FAPPCredUntrusted   = "untrusted-issuer"
	FAPPCredRevoked     = "revoked"
)

// FAPPCredentialStatus is fapp.credential.status's (and import's) result.
type FAPPCredentialStatus struct {
	// Identity is this node's keys in the text form an issuer needs
	// (fapp-identity:<128 hex characters>): pass it to `fapp issuer issue`.
	Identity string `json:"identity"`
	// Therapist is this node's therapist key in hex.
	Therapist string `json:"therapist"`
	// Status is "missing", "valid", "not-yet-valid", "expired",
	// "untrusted-issuer" or "revoked", judged with this node's trusted
	// issuers and clock.
	Status string `json:"status"`
	// Detail says the same in a sentence for people.
	Detail string `json:"detail,omitempty"`
	// Serial is the credential's serial at its issuer.
	Serial uint64 `json:"serial,omitempty"`
	// Berufsgruppe is the profession the credential states.
	Berufsgruppe string `json:"berufsgruppe,omitempty"`
	// RegistryID is the registry or license ID the credential states.
	RegistryID string `json:"registry_id,omitempty"`
	// ValidFrom is the start of the validity.
	ValidFrom time.Time `json:"valid_from,omitzero"`
	// ValidTo is the end of the validity.
	ValidTo time.Time `json:"valid_to,omitzero"`
	// Issuer is the issuer's key ID (16 hex characters).
	Issuer string `json:"issuer,omitempty"`
}

// FAPPRevocationParams are fapp.revocation.import's parameters.
type FAPPRevocationParams struct {
	// Revocation is the revocation list's text form,
	// fapp-revocation:<base64url>, as `fapp issuer revoke` prints it.
	Revocation string `json:"revocation"`
}

// FAPPIssuer is a trusted credential issuer.
type FAPPIssuer struct {
	// Key is the issuer's Ed25519 public key in hex (what the configuration
	// holds).
	Key string `json:"key"`
	// ID is the key's 8-byte ID in hex, as credentials name it.
	ID string `json:"id"`
	// RevocationSequence is the sequence of the newest revocation list
	// applied (0: none).
	RevocationSequence uint32 `json:"revocation_sequence"`
	// Revoked is the number of serials that list revokes.
	Revoked int `json:"revoked"`
}
