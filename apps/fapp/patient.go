package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"meshd.dev/meshd/rpcapi"
)

// cmdPatient is "fapp patient ...": the patient's side.
func cmdPatient(o *options) *cobra.Command {
	cmd := group(o, "patient", "Patientenseite: Termine suchen, reservieren, Stand verfolgen, stornieren",
		"Patient side: search, reserve, follow the state, cancel",
		cmdSearch(o), cmdReserve(o), cmdReservations(o, rpcapi.FAPPRolePatient),
		cmdCancel(o, "Eigene Reservierung stornieren", "Cancel an own reservation"), cmdWait(o))
	cmd.Long = o.t(`Eine Suche in einer Region, der der Knoten folgt ("fapp follow"), wird aus dem
lokalen Index beantwortet und verlässt das Gerät nicht. Eine Reservierung
enthält nur, was Sie angeben, und ist Ende-zu-Ende für die Therapeutin oder
den Therapeuten verschlüsselt.`,
		`A search in a region the node follows ("fapp follow") is answered from the
local index and never leaves the device. A reservation carries only what you
give, sealed end to end to the therapist.`)
	return cmd
}

func cmdSearch(o *options) *cobra.Command {
	var q rpcapi.FAPPQueryParams
	var from, to string
	var evenings, barrierefrei, wait bool
	cmd := &cobra.Command{
		Use:   "search",
		Short: o.t("Freie Termine suchen", "Search free slots"),
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if from != "" {
				if q.Fruehestens, err = parseWhen(from); err != nil {
					return usageError{fmt.Errorf("--ab: %v", err)}
				}
			}
			if to != "" {
				if q.Spaetestens, err = parseWhen(to); err != nil {
					return usageError{fmt.Errorf("--bis: %v", err)}
				}
			}
			if evenings {
				q.Zeitfenster = append(q.Zeitfenster, "mo-fr 17:00-21:00")
			}
			if barrierefrei {
				q.BarrierefreiZugang = true
			}
			for _, l := range []*[]string{&q.Verfahren, &q.Kostentraeger, &q.Terminart, &q.Altersgruppe, &q.Setting, &q.Modalitaet, &q.Sprachen, &q.Geschlecht} {
				*l = splitArgs(*l)
			}
			return o.withClient(cmd, func(ctx context.Context, c *rpcapi.Client) error {
				res, err := o.search(ctx, c, q, wait)
				if err != nil {
					return err
				}
				return o.printMatches(res)
			})
		},
	}
	f := cmd.Flags()
	f.BoolVar(&wait, "wait", false, o.t("warten, bis etwas passt (bis --timeout); sucht neu, wenn sich der Index ändert",
		"wait until something matches (up to --timeout); searches again when the index changes"))
	f.StringVar(&q.PLZPrefix, "plz", "", o.t("PLZ-Anfang, 1 bis 5 Ziffern (gröber verrät weniger), z. B. 10", "PLZ prefix, 1 to 5 digits (coarser says less about you), e.g. 10"))
	f.StringSliceVar(&q.Verfahren, "verfahren", nil, "VERHALTENSTHERAPIE, TIEFENPSYCHOLOGISCH_FUNDIERT, ANALYTISCH, SYSTEMISCH")
	f.StringSliceVar(&q.Kostentraeger, "kostentraeger", nil, "GKV, PKV, BEIHILFE, SELBSTZAHLER, KOSTENERSTATTUNG")
	f.StringSliceVar(&q.Terminart, "terminart", nil, "SPRECHSTUNDE, AKUTBEHANDLUNG, PROBATORIK, THERAPIEPLATZ_KZT, ...")
	f.StringSliceVar(&q.Altersgruppe, "altersgruppe", nil, "ERWACHSENE, KINDER_JUGENDLICHE")
	f.StringSliceVar(&q.Setting, "setting", nil, "EINZEL, GRUPPE, MEHRPERSONEN")
	f.StringSliceVar(&q.Modalitaet, "modalitaet", nil, "PRAXIS, VIDEO")
	f.StringSliceVar(&q.Sprachen, "sprache", nil, o.t("Sprache (ISO 639-1), z. B. tr", "language (ISO 639-1), e.g. tr"))
	f.StringSliceVar(&q.Geschlecht, "geschlecht", nil, "WEIBLICH, MAENNLICH, DIVERS")
	f.BoolVar(&barrierefrei, "barrierefrei", false, o.t("nur mit barrierefreiem Zugang", "barrier-free entrance only"))
	f.BoolVar(&q.BarrierefreiWC, "barrierefrei-wc", false, o.t("nur mit barrierefreiem WC", "barrier-free toilet only"))
	f.StringSliceVar(&q.Zeitfenster, "zeitfenster", nil, o.t("Zeitfenster, z. B. \"mo-fr 17:00-21:00\"", "time window, e.g. \"mo-fr 17:00-21:00\""))
	f.BoolVar(&evenings, "abends", false, o.t("werktags abends (mo-fr 17:00-21:00)", "weekday evenings (mo-fr 17:00-21:00)"))
	f.StringVar(&from, "ab", "", o.t("frühester Beginn", "earliest start"))
	f.StringVar(&to, "bis", "", o.t("spätester Beginn", "latest start"))
	f.BoolVar(&q.NurZertifiziert, "zertifiziert", false, o.t("nur mit gültigem Nachweis eines vertrauenswürdigen Ausstellers", "only with a credential from a trusted issuer"))
	f.BoolVar(&q.LocalOnly, "lokal", false, o.t("nur den lokalen Index fragen: nichts verlässt das Gerät", "ask the local index only: nothing leaves the device"))
	f.IntVar(&q.Limit, "limit", 0, o.t("höchstens so viele Treffer (Standard 100)", "at most this many matches (default 100)"))
	cmd.MarkFlagRequired("plz")
	return cmd
}

// search runs the query; with wait it runs it again on every fapp-index
// event (a region's index changed) until something matches or ctx ends.
func (o *options) search(ctx context.Context, c *rpcapi.Client, q rpcapi.FAPPQueryParams, wait bool) (rpcapi.FAPPQueryResult, error) {
	var events <-chan rpcapi.Event
	if wait {
		var err error
		if events, err = c.Subscribe(ctx); err != nil {
			return rpcapi.FAPPQueryResult{}, err
		}
	}
	for {
		res, err := c.FAPPQuery(ctx, q)
		if err != nil || !wait || len(res.Matches) > 0 {
			return res, err
		}
		if err := nextIndexEvent(ctx, events); err != nil {
			return res, fmt.Errorf(o.t("nichts gefunden bis zum Ablauf von --timeout: %w", "nothing found before --timeout: %w"), err)
		}
	}
}

// nextIndexEvent waits for the next fapp-index event.
func nextIndexEvent(ctx context.Context, events <-chan rpcapi.Event) error {
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				return errors.New("meshd closed the connection")
			}
			if ev.Kind == rpcapi.EventFAPPIndex {
				return nil
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (o *options) printMatches(res rpcapi.FAPPQueryResult) error {
	if o.json {
		return o.printJSON(res)
	}
	if len(res.Matches) == 0 {
		fmt.Fprintln(o.stdout, o.t("keine freien Termine gefunden", "no free slots found"))
	} else {
		rows := make([][]string, len(res.Matches))
		for i, m := range res.Matches {
			name := m.Name
			if name == "" {
				name = short(m.Therapist)
			}
			cert := ""
			if m.Zertifiziert {
				cert = " ✓"
			}
			rows[i] = []string{m.Ref, name + cert, m.PLZ, m.Slot.Terminart, m.Slot.Verfahren, o.when(m.Slot.Start), fmt.Sprint(m.Slot.Dauer),
				m.Slot.Modalitaet, list(m.Kostentraeger), list(m.Sprachen)}
		}
		if err := table(o.stdout, o.t("REF\tNAME\tPLZ\tTERMINART\tVERFAHREN\tBEGINN\tMIN\tMODALITÄT\tKOSTENTRÄGER\tSPRACHEN",
			"REF\tNAME\tPLZ\tTERMINART\tVERFAHREN\tSTART\tMIN\tMODALITAET\tKOSTENTRAEGER\tLANGUAGES"), rows); err != nil {
			return err
		}
	}
	switch {
	case res.Source == "local":
		fmt.Fprintln(o.stdout, o.t("(aus dem lokalen Index; nichts wurde gesendet)", "(from the local index; nothing was sent)"))
	case res.Source != "":
		fmt.Fprintln(o.stdout, o.t("(anonym bei FAPP-Relays angefragt)", "(asked FAPP relays anonymously)"))
	}
	if !res.Complete {
		fmt.Fprintln(o.stdout, o.t("(unvollständig: der Knoten folgt der Region nicht ganz; fapp follow REGION)",
			"(incomplete: the node does not follow the whole region; fapp follow REGION)"))
	}
	return nil
}

func cmdReserve(o *options) *cobra.Command {
	var p rpcapi.FAPPReserveParams
	var start string
	cmd := &cobra.Command{
		Use:   "reserve REF",
		Short: o.t("Einen gefundenen Termin reservieren (REF aus der Suche)", "Reserve a slot found by search (REF from the search)"),
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			p.Slot = args[0]
			if start != "" {
				t, err := parseWhen(start)
				if err != nil {
					return usageError{fmt.Errorf("--start: %v", err)}
				}
				p.Start = t
			}
			return o.withClient(cmd, func(ctx context.Context, c *rpcapi.Client) error {
				r, err := c.FAPPReserve(ctx, p)
				if err != nil {
					return err
				}
				return o.printReservation(r)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&p.Kontakt, "kontakt", "", o.t("wie die Praxis Sie erreicht (E-Mail, Telefon); nur das wird übermittelt", "how the practice reaches you (e-mail, phone); only this is sent"))
	f.StringVar(&p.PTV11, "ptv11", "", o.t("Angaben aus dem PTV-11-Formular (optional)", "data from the PTV 11 form (optional)"))
	f.StringVar(&start, "start", "", o.t("gewünschter Termin eines wöchentlichen Platzes", "the occurrence wanted, for a weekly place"))
	return cmd
}

// cmdWait is "fapp patient wait ID STATE...": block until the reservation
// reaches one of the states, woken by the node's events (for scripts and
// the walkthrough).
func cmdWait(o *options) *cobra.Command {
	return &cobra.Command{
		Use: "wait ID STATE...",
		Short: o.t("Warten, bis eine Reservierung da ist und einen der Zustände erreicht (z. B. BESTAETIGT)",
			"Wait until a reservation is there and in one of the states (e.g. BESTAETIGT)"),
		Args: usageArgs(cobra.MinimumNArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, want := args[0], args[1:]
			for i := range want {
				want[i] = strings.ToUpper(want[i])
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), o.timeout)
			defer cancel()
			c, err := o.dial(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			events, err := c.Subscribe(ctx)
			if err != nil {
				return err
			}
			for {
				rs, err := c.FAPPReservations(ctx, rpcapi.FAPPReservationsParams{})
				if err != nil {
					return err
				}
				// A request the therapist's node has not received yet is
				// not there: wait for it like for a state change.
				state := o.t("unbekannt", "unknown")
				i := slices.IndexFunc(rs, func(r rpcapi.FAPPReservation) bool { return r.ID == id })
				if i >= 0 && slices.Contains(want, rs[i].State) {
					return o.printReservation(rs[i])
				}
				if i >= 0 {
					state = rs[i].State
				}
				select {
				case _, ok := <-events:
					if !ok {
						return errors.New(o.t("meshd hat die Verbindung geschlossen", "meshd closed the connection"))
					}
				case <-ctx.Done():
					return fmt.Errorf(o.t("Reservierung %[1]s ist nach %[2]v noch %[3]s", "reservation %[1]s is still %[3]s after %[2]v"), id, o.timeout, state)
				}
			}
		},
	}
}
