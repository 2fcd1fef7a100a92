package rpcapi

import (
	"context"
	"fmt"

	"meshd.dev/meshd/fapp"
)

// fappMethods are the fapp.* entries of the method table. Each validates
// its parameters with clear reasons before the node sees them.
func fappMethods() []MethodSpec {
	errsFound := []int{CodeInvalidParams, CodeNotFound, CodeRefused, CodeUnavailable, CodeInternal}
	ms := []MethodSpec{
		define(MethodFAPPProfile, "Read or set this node's therapist profile.",
			"Without `set` the call reads the profile. With `set` it replaces it: the name, the practice PLZ (5 digits, a German postal code in use; never a street address), the Verfahren, Kostentraeger and Altersgruppen offered (at least one each), languages, gender, accessibility and focus areas. The next announce carries it; publish with fapp.publish.",
			errsRefused,
			func(ctx context.Context, env *callEnv, p *FAPPProfileParams) (FAPPProfileInfo, error) {
				if p.Set == nil {
					return env.srv.fapp.FAPPProfileGet(ctx)
				}
				a, pr, err := p.Set.Parse()
				if err != nil {
					return FAPPProfileInfo{}, invalidParams("set: %v", err)
				}
				// The node sees canonical names.
				return env.srv.fapp.FAPPProfileSet(ctx, FAPPProfileOf(a, pr))
			}),
		define(MethodFAPPPublish, "Add or update own slots and announce them.",
			fmt.Sprintf("Each slot with `id` 0 is added (the node picks its ID, above every ID it published: slot IDs are never reused); a slot with the ID of an own slot replaces it, the ID of a withdrawn slot is refused. The node signs a new announce (a higher sequence replaces the older one everywhere) with every own slot. Slot changes go out in batches (`pending`, `next_announce`) so a reservation cannot be timed from the announces. At most %d slots per call. Needs a profile (fapp.profile) first; without a valid credential the announce is marked uncertified by other nodes.", fapp.MaxSlots),
			errsRefused,
			func(ctx context.Context, env *callEnv, p *FAPPPublishParams) (FAPPOffer, error) {
				if err := checkPublishSlots(p.Slots); err != nil {
					return FAPPOffer{}, err
				}
				return env.srv.fapp.FAPPPublish(ctx, *p)
			}),
		define(MethodFAPPWithdraw, "Withdraw own slots, or the whole offer.",
			"With `slots`, those own slots are removed and the rest announced again. Without, the whole offer is withdrawn: an announce without slots replaces the last one, and nodes drop the therapist from their index.",
			errsFound,
			func(ctx context.Context, env *callEnv, p *FAPPWithdrawParams) (FAPPOffer, error) {
				if err := checkSlotIDs(p.Slots); err != nil {
					return FAPPOffer{}, err
				}
				return env.srv.fapp.FAPPWithdraw(ctx, *p)
			}),
		define(MethodFAPPSlots, "List own slots and the state of the own announce.",
			"Returns every own slot with its ID and status (FREI, GEHALTEN, VERGEBEN), the latest announce's sequence and expiry, and whether a change waits for the next batch.",
			errsNode,
			func(ctx context.Context, env *callEnv, _ *noParams) (FAPPOffer, error) {
				o, err := env.srv.fapp.FAPPSlots(ctx)
				if o.Slots == nil {
					o.Slots = []FAPPSlot{}
				}
				return o, err
			}),
		define(MethodFAPPQuery, "Search free slots.",
			"Every filter is optional; lists match any of their values. A query whose `plz_prefix` lies in a region this node follows is answered from the local index and sends nothing (`source` \"local\"). Otherwise the node asks FAPP relays with a fresh query ID and an ephemeral reply key, and no identifier of the asker (`source` \"relays\"); `local_only` forbids that. Matches are free slots, earliest first.",
			errsRefused,
			func(ctx context.Context, env *callEnv, p *FAPPQueryParams) (FAPPQueryResult, error) {
				if _, err := p.Parse(); err != nil {
					return FAPPQueryResult{}, invalidParams("%v", err)
				}
				r, err := env.srv.fapp.FAPPQuery(ctx, *p)
				if r.Matches == nil {
					r.Matches = []FAPPMatch{}
				}
				return r, err
			}),
		define(MethodFAPPReserve, "Reserve a slot.",
			fmt.Sprintf("Sends a reservation request for `slot` (a `ref` from fapp.query), sealed end to end to the therapist, with a proof-of-work stamp instead of an identity. It carries only `slot`, `start`, `kontakt` (at most %d bytes) and `ptv11` (at most %d). The reservation starts ANGEFRAGT; the therapist's answer arrives as a `fapp-reservation` event. If the therapist's node is offline the request waits in custody. An ABGELEHNT whose `nachricht` is `ausgelastet: stamp_bits=N` means the slot has many waiting requests: ask again with `stamp_bits` N (more work, up to %d bits). The stamp is minted while the call waits (seconds at the default, minutes of a phone's CPU at 28 bits): a call given up meanwhile (the client hangs up, or the server or the node stops) stops the minting and makes no reservation (`-32000`); ask again.", fapp.MaxKontaktLen, fapp.MaxPTV11Len, fapp.MaxRequestStampBits),
			errsFound,
			func(ctx context.Context, env *callEnv, p *FAPPReserveParams) (FAPPReservation, error) {
				if err := checkReserve(p); err != nil {
					return FAPPReservation{}, err
				}
				return env.srv.fapp.FAPPReserve(ctx, *p)
			}),
		define(MethodFAPPReservations, "List reservations.",
			"Reservations this node made as a patient and requests for its own slots as a therapist, newest first; `role` and `states` filter.",
			errsParams,
			func(ctx context.Context, env *callEnv, p *FAPPReservationsParams) ([]FAPPReservation, error) {
				if err := checkReservationsFilter(p); err != nil {
					return nil, err
				}
				rs, err := env.srv.fapp.FAPPReservations(ctx, *p)
				if rs == nil {
					rs = []FAPPReservation{}
				}
				return rs, err
			}),
		define(MethodFAPPRespond, "Answer a reservation request (therapist).",
			fmt.Sprintf("`action` \"confirm\" makes the reservation BESTAETIGT with the therapist's signature, and the slot is announced as VERGEBEN in the next batch, without patient data. \"decline\" makes it ABGELEHNT. `nachricht` (optional, at most %d bytes) goes to the patient sealed with the answer. \"hold\" makes it GEHALTEN until `until` (default: the node's hold time) and the slot GEHALTEN. A state the reservation cannot leave that way is refused (-32001).", fapp.MaxNachrichtLen),
			errsFound,
			func(ctx context.Context, env *callEnv, p *FAPPRespondParams) (FAPPReservation, error) {
				if err := checkRespond(p); err != nil {
					return FAPPReservation{}, err
				}
				return env.srv.fapp.FAPPRespond(ctx, *p)
			}),
		define(MethodFAPPCancel, "Cancel a reservation (either side).",
			"The patient's side becomes STORNIERT_PATIENT, the therapist's STORNIERT_THERAPEUT; the other side is told, and a taken slot is free again in the next batch. Cancelling a reservation that already ended is refused (-32001).",
			errsFound,
			func(ctx context.Context, env *callEnv, p *FAPPCancelParams) (FAPPReservation, error) {
				if err := checkReservationID(p.ID); err != nil {
					return FAPPReservation{}, err
				}
				return env.srv.fapp.FAPPCancel(ctx, *p)
			}),
		define(MethodFAPPFollow, "Follow PLZ regions.",
			"The node subscribes to the announces of each 2-digit region (a gossip topic on IP, region-scoped flooding on mesh links) and keeps them in its index, so queries within them are answered locally. Following a region already followed is harmless.",
			errsRefused,
			func(ctx context.Context, env *callEnv, p *FAPPRegionsParams) (FAPPRegions, error) {
				if err := checkRegions(p.Regions); err != nil {
					return FAPPRegions{}, err
				}
				return fappRegionsResult(env.srv.fapp.FAPPFollow(ctx, p.Regions))
			}),
		define(MethodFAPPUnfollow, "Stop following PLZ regions.",
			"The node leaves each region's topic and drops its announces from the index. Unfollowing a region not followed is harmless.",
			errsRefused,
			func(ctx context.Context, env *callEnv, p *FAPPRegionsParams) (FAPPRegions, error) {
				if err := checkRegions(p.Regions); err != nil {
					return FAPPRegions{}, err
				}
				return fappRegionsResult(env.srv.fapp.FAPPUnfollow(ctx, p.Regions))
			}),
		define(MethodFAPPRegions, "List followed regions.",
			"The followed regions with the number of announces and free slots held for each, and whether the node is a FAPP relay (it then follows every region).",
			errsNode,
			func(ctx context.Context, env *callEnv, _ *noParams) (FAPPRegions, error) {
				return fappRegionsResult(env.srv.fapp.FAPPRegions(ctx))
			}),
		define(MethodFAPPCredentialImport, "Import this node's license credential.",
			"`credential` is the text form `fapp-credential:<base64url>` that an issuer's `fapp issuer issue` prints. It must name this node's keys (fapp.credential.status's `identity`). It is stored and travels with the profile; other nodes verify it against their own trusted issuers. The result says whether this node's trusted issuers accept it.",
			errsRefused,
			func(ctx context.Context, env *callEnv, p *FAPPCredentialParams) (FAPPCredentialStatus, error) {
				raw, err := ParseFAPPText(FAPPCredentialPrefix, p.Credential)
				if err != nil {
					return FAPPCredentialStatus{}, invalidParams("credential: %v", err)
				}
				if err := checkCredential(raw); err != nil {
					return FAPPCredentialStatus{}, invalidParams("credential: %v", err)
				}
				return env.srv.fapp.FAPPCredentialImport(ctx, raw)
			}),
		define(MethodFAPPCredentialStatus, "Show this node's credential and identity.",
			"`identity` is what an issuer needs to issue a credential for this node; `status` is \"missing\", \"valid\", \"not-yet-valid\", \"expired\", \"untrusted-issuer\" or \"revoked\", judged with this node's trusted issuers and clock.",
			errsNode,
			func(ctx context.Context, env *callEnv, _ *noParams) (FAPPCredentialStatus, error) {
				return env.srv.fapp.FAPPCredentialStatus(ctx)
			}),
		define(MethodFAPPIssuers, "List the trusted credential issuers.",
			"The issuer keys in the node's configuration (`[fapp] trusted_issuers`), with the newest revocation list applied for each.",
			errsNode,
			func(ctx context.Context, env *callEnv, _ *noParams) ([]FAPPIssuer, error) {
				is, err := env.srv.fapp.FAPPIssuers(ctx)
				if is == nil {
					is = []FAPPIssuer{}
				}
				return is, err
			}),
		define(MethodFAPPRevocationImport, "Apply an issuer's revocation list.",
			"`revocation` is the text form `fapp-revocation:<base64url>` that `fapp issuer revoke` prints. It must be signed by a trusted issuer and newer than the list held; credentials it names stop verifying at once.",
			errsRefused,
			func(ctx context.Context, env *callEnv, p *FAPPRevocationParams) (FAPPIssuer, error) {
				raw, err := ParseFAPPText(FAPPRevocationPrefix, p.Revocation)
				if err != nil {
					return FAPPIssuer{}, invalidParams("revocation: %v", err)
				}
				if err := checkRevocation(raw); err != nil {
					return FAPPIssuer{}, invalidParams("revocation: %v", err)
				}
				return env.srv.fapp.FAPPRevocationImport(ctx, raw)
			}),
	}
	for i := range ms {
		ms[i].FAPP = true
	}
	return ms
}

func fappRegionsResult(r FAPPRegions, err error) (FAPPRegions, error) {
	if r.Followed == nil {
		r.Followed = []FAPPRegion{}
	}
	return r, err
}

// FAPPProfile calls fapp.profile without set: it reads the own profile.
func (c *Client) FAPPProfile(ctx context.Context) (FAPPProfileInfo, error) {
	var v FAPPProfileInfo
	return v, c.Call(ctx, MethodFAPPProfile, nil, &v)
}

// FAPPProfileSet calls fapp.profile with set.
func (c *Client) FAPPProfileSet(ctx context.Context, p FAPPProfile) (FAPPProfileInfo, error) {
	var v FAPPProfileInfo
	return v, c.Call(ctx, MethodFAPPProfile, FAPPProfileParams{Set: &p}, &v)
}

// FAPPPublish calls fapp.publish.
func (c *Client) FAPPPublish(ctx context.Context, p FAPPPublishParams) (FAPPOffer, error) {
	var v FAPPOffer
	return v, c.Call(ctx, MethodFAPPPublish, p, &v)
}

// FAPPWithdraw calls fapp.withdraw.
func (c *Client) FAPPWithdraw(ctx context.Context, p FAPPWithdrawParams) (FAPPOffer, error) {
	var v FAPPOffer
	return v, c.Call(ctx, MethodFAPPWithdraw, p, &v)
}

// FAPPSlots calls fapp.slots.
func (c *Client) FAPPSlots(ctx context.Context) (FAPPOffer, error) {
	var v FAPPOffer
	return v, c.Call(ctx, MethodFAPPSlots, nil, &v)
}

// FAPPQuery calls fapp.query.
func (c *Client) FAPPQuery(ctx context.Context, q FAPPQueryParams) (FAPPQueryResult, error) {
	var v FAPPQueryResult
	return v, c.Call(ctx, MethodFAPPQuery, q, &v)
}

// FAPPReserve calls fapp.reserve.
func (c *Client) FAPPReserve(ctx context.Context, p FAPPReserveParams) (FAPPReservation, error) {
	var v FAPPReservation
	return v, c.Call(ctx, MethodFAPPReserve, p, &v)
}

// FAPPReservations calls fapp.reservations.
func (c *Client) FAPPReservations(ctx context.Context, p FAPPReservationsParams) ([]FAPPReservation, error) {
	var v []FAPPReservation
	return v, c.Call(ctx, MethodFAPPReservations, p, &v)
}

// FAPPRespond calls fapp.respond.
func (c *Client) FAPPRespond(ctx context.Context, p FAPPRespondParams) (FAPPReservation, error) {
	var v FAPPReservation
	return v, c.Call(ctx, MethodFAPPRespond, p, &v)
}

// FAPPCancel calls fapp.cancel.
func (c *Client) FAPPCancel(ctx context.Context, p FAPPCancelParams) (FAPPReservation, error) {
	var v FAPPReservation
	return v, c.Call(ctx, MethodFAPPCancel, p, &v)
}

// FAPPFollow calls fapp.follow.
func (c *Client) FAPPFollow(ctx context.Context, regions ...string) (FAPPRegions, error) {
	var v FAPPRegions
	return v, c.Call(ctx, MethodFAPPFollow, FAPPRegionsParams{Regions: nonNil(regions)}, &v)
}

// FAPPUnfollow calls fapp.unfollow.
func (c *Client) FAPPUnfollow(ctx context.Context, regions ...string) (FAPPRegions, error) {
	var v FAPPRegions
	return v, c.Call(ctx, MethodFAPPUnfollow, FAPPRegionsParams{Regions: nonNil(regions)}, &v)
}

// FAPPRegions calls fapp.regions.
func (c *Client) FAPPRegions(ctx context.Context) (FAPPRegions, error) {
	var v FAPPRegions
	return v, c.Call(ctx, MethodFAPPRegions, nil, &v)
}

// FAPPCredentialImport calls fapp.credential.import with a credential's
// text form.
func (c *Client) FAPPCredentialImport(ctx context.Context, credential string) (FAPPCredentialStatus, error) {
	var v FAPPCredentialStatus
	return v, c.Call(ctx, MethodFAPPCredentialImport, FAPPCredentialParams{Credential: credential}, &v)
}

// FAPPCredentialStatus calls fapp.credential.status.
func (c *Client) FAPPCredentialStatus(ctx context.Context) (FAPPCredentialStatus, error) {
	var v FAPPCredentialStatus
	return v, c.Call(ctx, MethodFAPPCredentialStatus, nil, &v)
}

// FAPPIssuers calls fapp.issuers.
func (c *Client) FAPPIssuers(ctx context.Context) ([]FAPPIssuer, error) {
	var v []FAPPIssuer
	return v, c.Call(ctx, MethodFAPPIssuers, nil, &v)
}

// FAPPRevocationImport calls fapp.revocation.import with a revocation
// list's text form.
func (c *Client) FAPPRevocationImport(ctx context.Context, revocation string) (FAPPIssuer, error) {
	var v FAPPIssuer
	return v, c.Call(ctx, MethodFAPPRevocationImport, FAPPRevocationParams{Revocation: revocation}, &v)
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
