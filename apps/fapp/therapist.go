package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/spf13/cobra"

	"meshd.dev/meshd/rpcapi"
)

// cmdTherapist is "fapp therapist ...": the therapist's side.
func cmdTherapist(o *options) *cobra.Command {
	return group(o, "therapist", "Therapeutenseite: Profil, Nachweis, Termine veröffentlichen, Anfragen beantworten",
		"Therapist side: profile, credential, publish slots, answer requests",
		cmdProfile(o), cmdIdentity(o), cmdCredential(o), cmdSlots(o), cmdPublish(o), cmdWithdraw(o), cmdReservations(o, rpcapi.FAPPRoleTherapist),
		cmdRespond(o, rpcapi.FAPPConfirm), cmdRespond(o, rpcapi.FAPPDecline), cmdRespond(o, rpcapi.FAPPHold),
		cmdCancel(o, "Reservierung als Therapeut/in stornieren", "Cancel a reservation as the therapist"), cmdWait(o))
}

func cmdProfile(o *options) *cobra.Command {
	var p rpcapi.FAPPProfile
	cmd := &cobra.Command{
		Use:   "profile",
		Short: o.t("Eigenes Profil anzeigen oder mit Flags ändern", "Show the own profile, or change it with flags"),
		Long: o.t(`Ohne Flags zeigt der Befehl das Profil. Mit Flags ändert er die angegebenen
Felder und behält die übrigen. Listen sind kommagetrennt, Werte wie
VERHALTENSTHERAPIE oder GKV in beliebiger Schreibung.`,
			`Without flags the command shows the profile. With flags it changes the fields
given and keeps the rest. Lists are comma-separated, values such as
VERHALTENSTHERAPIE or GKV in any case.`),
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.withClient(cmd, func(ctx context.Context, c *rpcapi.Client) error {
				info, err := c.FAPPProfile(ctx)
				if err != nil {
					return err
				}
				if cmd.Flags().NFlag() > 0 {
					merged := mergeProfile(cmd, info.Profile, p)
					if info, err = c.FAPPProfileSet(ctx, merged); err != nil {
						return err
					}
				}
				return o.printProfile(info)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&p.Name, "name", "", o.t("Anzeigename", "display name"))
	f.StringVar(&p.PLZ, "plz", "", o.t("PLZ der Praxis (5 Ziffern, keine Adresse)", "the practice's PLZ (5 digits, no street address)"))
	f.StringSliceVar(&p.Verfahren, "verfahren", nil, "VERHALTENSTHERAPIE, TIEFENPSYCHOLOGISCH_FUNDIERT, ANALYTISCH, SYSTEMISCH")
	f.StringSliceVar(&p.Kostentraeger, "kostentraeger", nil, "GKV, PKV, BEIHILFE, SELBSTZAHLER, KOSTENERSTATTUNG")
	f.StringSliceVar(&p.Altersgruppen, "altersgruppen", nil, "ERWACHSENE, KINDER_JUGENDLICHE")
	f.StringSliceVar(&p.Sprachen, "sprachen", nil, o.t("Sprachen als ISO-639-1-Codes, z. B. de,tr", "languages as ISO 639-1 codes, e.g. de,tr"))
	f.StringVar(&p.Geschlecht, "geschlecht", "", "WEIBLICH, MAENNLICH, DIVERS")
	f.BoolVar(&p.BarrierefreiZugang, "barrierefrei-zugang", false, o.t("barrierefreier Zugang", "barrier-free entrance"))
	f.BoolVar(&p.BarrierefreiWC, "barrierefrei-wc", false, o.t("barrierefreies WC", "barrier-free toilet"))
	f.BoolVar(&p.Warteliste, "warteliste", false, o.t("Warteliste offen", "waiting list open"))
	f.StringSliceVar(&p.Schwerpunkte, "schwerpunkte", nil, o.t("Schwerpunkte, z. B. Angst,Trauma", "focus areas, e.g. Angst,Trauma"))
	return cmd
}

// mergeProfile applies the flags given to the current profile.
func mergeProfile(cmd *cobra.Command, cur *rpcapi.FAPPProfile, p rpcapi.FAPPProfile) rpcapi.FAPPProfile {
	var out rpcapi.FAPPProfile
	if cur != nil {
		out = *cur
	}
	set := cmd.Flags().Changed
	pick := func(name string, dst *[]string, v []string) {
		if set(name) {
			*dst = splitArgs(v)
		}
	}
	if set("name") {
		out.Name = p.Name
	}
	if set("plz") {
		out.PLZ = p.PLZ
	}
	if set("geschlecht") {
		out.Geschlecht = p.Geschlecht
	}
	pick("verfahren", &out.Verfahren, p.Verfahren)
	pick("kostentraeger", &out.Kostentraeger, p.Kostentraeger)
	pick("altersgruppen", &out.Altersgruppen, p.Altersgruppen)
	pick("sprachen", &out.Sprachen, p.Sprachen)
	pick("schwerpunkte", &out.Schwerpunkte, p.Schwerpunkte)
	for name, dst := range map[string]*bool{"barrierefrei-zugang": &out.BarrierefreiZugang, "barrierefrei-wc": &out.BarrierefreiWC, "warteliste": &out.Warteliste} {
		if set(name) {
			*dst, _ = cmd.Flags().GetBool(name)
		}
	}
	return out
}

func (o *options) printProfile(info rpcapi.FAPPProfileInfo) error {
	if o.json {
		return o.printJSON(info)
	}
	p := info.Profile
	if p == nil {
		fmt.Fprintf(o.stdout, o.t("noch kein Profil (Therapeutenschlüssel %s)\nanlegen mit: fapp therapist profile --name ... --plz ... --verfahren ... --kostentraeger ... --altersgruppen ...\n",
			"no profile yet (therapist key %s)\ncreate one with: fapp therapist profile --name ... --plz ... --verfahren ... --kostentraeger ... --altersgruppen ...\n"), info.Therapist)
		return nil
	}
	rows := [][]string{
		{o.t("Name", "name"), p.Name},
		{"PLZ", p.PLZ},
		{"Verfahren", list(p.Verfahren)},
		{o.t("Kostenträger", "Kostentraeger"), list(p.Kostentraeger)},
		{o.t("Altersgruppen", "Altersgruppen"), list(p.Altersgruppen)},
		{o.t("Sprachen", "languages"), list(p.Sprachen)},
		{o.t("Geschlecht", "gender"), dash(p.Geschlecht)},
		{o.t("barrierefrei", "barrier-free"), fmt.Sprintf(o.t("Zugang %s, WC %s", "entrance %s, toilet %s"), yes(o, p.BarrierefreiZugang), yes(o, p.BarrierefreiWC))},
		{o.t("Warteliste offen", "waiting list open"), yes(o, p.Warteliste)},
		{o.t("Schwerpunkte", "focus areas"), list(p.Schwerpunkte)},
		{o.t("Therapeutenschlüssel", "therapist key"), info.Therapist},
	}
	return table(o.stdout, o.t("PROFIL\t", "PROFILE\t"), rows)
}

// cmdIdentity prints only the node's identity text, to pipe into
// "fapp issuer issue --identity -".
func cmdIdentity(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "identity",
		Short: o.t("Nur die Identität des Knotens ausgeben (für fapp issuer issue --identity -)", "Print only the node's identity (for fapp issuer issue --identity -)"),
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.withClient(cmd, func(ctx context.Context, c *rpcapi.Client) error {
				st, err := c.FAPPCredentialStatus(ctx)
				if err != nil {
					return err
				}
				fmt.Fprintln(o.stdout, st.Identity)
				return nil
			})
		},
	}
}

func cmdCredential(o *options) *cobra.Command {
	imp := &cobra.Command{
		Use:   "import CREDENTIAL",
		Short: o.t("Nachweis eines Ausstellers importieren (- liest stdin)", "Import an issuer's credential (- reads stdin)"),
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			text, err := o.readArg(args[0])
			if err != nil {
				return err
			}
			if _, err := rpcapi.ParseFAPPText(rpcapi.FAPPCredentialPrefix, text); err != nil {
				return usageError{err}
			}
			return o.withClient(cmd, func(ctx context.Context, c *rpcapi.Client) error {
				st, err := c.FAPPCredentialImport(ctx, text)
				if err != nil {
					return err
				}
				return o.printCredential(st)
			})
		},
	}
	cmd := &cobra.Command{
		Use:   "credential",
		Short: o.t("Nachweis und Identität des Knotens anzeigen", "Show the node's credential and identity"),
		Long: o.t(`Zeigt die Identität (fapp-identity:...), die ein Aussteller für "fapp issuer issue"
braucht, und den Stand des Nachweises.`,
			`Shows the identity (fapp-identity:...) an issuer needs for "fapp issuer issue"
and the state of the credential.`),
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.withClient(cmd, func(ctx context.Context, c *rpcapi.Client) error {
				st, err := c.FAPPCredentialStatus(ctx)
				if err != nil {
					return err
				}
				return o.printCredential(st)
			})
		},
	}
	cmd.AddCommand(imp)
	return cmd
}

var credStatusDE = map[string]string{
	rpcapi.FAPPCredMissing: "fehlt", rpcapi.FAPPCredValid: "gültig", rpcapi.FAPPCredNotYetValid: "noch nicht gültig",
	rpcapi.FAPPCredExpired: "abgelaufen", rpcapi.FAPPCredUntrusted: "Aussteller nicht vertrauenswürdig", rpcapi.FAPPCredRevoked: "widerrufen",
}

func (o *options) printCredential(st rpcapi.FAPPCredentialStatus) error {
	if o.json {
		return o.printJSON(st)
	}
	status := st.Status
	if o.lang == "de" && credStatusDE[status] != "" {
		status = credStatusDE[status]
	}
	rows := [][]string{{o.t("Status", "status"), status}}
	if st.Status != rpcapi.FAPPCredMissing {
		rows = append(rows,
			[]string{o.t("Berufsgruppe", "Berufsgruppe"), st.Berufsgruppe},
			[]string{o.t("Register-ID", "registry ID"), st.RegistryID},
			[]string{o.t("gültig", "valid"), o.date(st.ValidFrom) + " – " + o.date(st.ValidTo)},
			[]string{o.t("Aussteller", "issuer"), st.Issuer},
			[]string{o.t("Seriennummer", "serial"), strconv.FormatUint(st.Serial, 10)})
	}
	if st.Detail != "" {
		rows = append(rows, []string{o.t("Hinweis", "detail"), st.Detail})
	}
	rows = append(rows, []string{o.t("Identität", "identity"), st.Identity})
	return table(o.stdout, o.t("NACHWEIS\t", "CREDENTIAL\t"), rows)
}

func cmdSlots(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "slots",
		Short: o.t("Eigene Termine und den Stand der Ankündigung anzeigen", "Show own slots and the state of the announce"),
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.withClient(cmd, func(ctx context.Context, c *rpcapi.Client) error {
				offer, err := c.FAPPSlots(ctx)
				if err != nil {
					return err
				}
				return o.printOffer(offer)
			})
		},
	}
}

func (o *options) printOffer(offer rpcapi.FAPPOffer) error {
	if o.json {
		return o.printJSON(offer)
	}
	rows := make([][]string, len(offer.Slots))
	for i, s := range offer.Slots {
		rows[i] = o.slotRow(strconv.Itoa(int(s.ID)), s)
	}
	if err := table(o.stdout, o.slotHeader("ID"), rows); err != nil {
		return err
	}
	switch {
	case offer.Withdrawn:
		fmt.Fprintln(o.stdout, o.t("Angebot zurückgezogen", "offer withdrawn"))
	case offer.Sequence == 0:
		fmt.Fprintln(o.stdout, o.t("noch nicht angekündigt", "not announced yet"))
	default:
		fmt.Fprintf(o.stdout, o.t("Ankündigung %d vom %s, gültig bis %s\n", "announce %d of %s, expires %s\n"), offer.Sequence, o.when(offer.Published), o.when(offer.Expires))
	}
	if offer.Pending {
		fmt.Fprintf(o.stdout, o.t("Änderung wird gebündelt angekündigt um %s\n", "change will be announced in the batch at %s\n"), o.when(offer.NextAnnounce))
	}
	return nil
}

func (o *options) slotHeader(first string) string {
	return first + o.t("\tTERMINART\tVERFAHREN\tBEGINN\tDAUER\tWÖCHENTLICH BIS\tSETTING\tMODALITÄT\tPLÄTZE\tSTATUS",
		"\tTERMINART\tVERFAHREN\tSTART\tMINUTES\tWEEKLY UNTIL\tSETTING\tMODALITAET\tSEATS\tSTATUS")
}

func (o *options) slotRow(first string, s rpcapi.FAPPSlot) []string {
	weekly := "-"
	if s.Woechentlich {
		weekly = o.date(s.Bis)
	}
	seats := "-"
	if s.Plaetze > 0 {
		seats = strconv.Itoa(s.Plaetze)
	}
	return []string{first, s.Terminart, s.Verfahren, o.when(s.Start), strconv.Itoa(s.Dauer), weekly, s.Setting, s.Modalitaet, seats, s.Status}
}

func cmdPublish(o *options) *cobra.Command {
	var s rpcapi.FAPPSlot
	var start, bis string
	var id uint16
	cmd := &cobra.Command{
		Use:   "publish",
		Short: o.t("Einen Termin hinzufügen (oder mit --id ersetzen) und ankündigen", "Add a slot (or replace one with --id) and announce"),
		Long: o.t(`Ohne --terminart wird das bestehende Angebot erneut angekündigt (z. B. nach
einer Profiländerung). --start in Europe/Berlin, z. B. "2027-01-12 18:00".`,
			`Without --terminart the current offer is announced again (e.g. after a
profile change). --start is Europe/Berlin, e.g. "2027-01-12 18:00".`),
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var p rpcapi.FAPPPublishParams
			if cmd.Flags().Changed("terminart") {
				var err error
				if s.Start, err = parseWhen(start); err != nil {
					return usageError{fmt.Errorf("--start: %v", err)}
				}
				if bis != "" {
					if s.Bis, err = parseWhen(bis); err != nil {
						return usageError{fmt.Errorf("--bis: %v", err)}
					}
				}
				s.ID = id
				p.Slots = []rpcapi.FAPPSlot{s}
			}
			return o.withClient(cmd, func(ctx context.Context, c *rpcapi.Client) error {
				offer, err := c.FAPPPublish(ctx, p)
				if err != nil {
					return err
				}
				return o.printOffer(offer)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&s.Terminart, "terminart", "", "SPRECHSTUNDE, AKUTBEHANDLUNG, PROBATORIK, THERAPIEPLATZ_KZT, THERAPIEPLATZ_LZT, GRUPPE_GRUNDVERSORGUNG, GRUPPENTHERAPIE")
	f.StringVar(&s.Verfahren, "verfahren", "", o.t("eines der Verfahren des Profils", "one of the profile's Verfahren"))
	f.StringVar(&start, "start", "", o.t("Beginn (Europe/Berlin), z. B. \"2027-01-12 18:00\"", "start (Europe/Berlin), e.g. \"2027-01-12 18:00\""))
	f.IntVar(&s.Dauer, "dauer", 50, o.t("Dauer in Minuten: 25, 50 oder 100", "duration in minutes: 25, 50 or 100"))
	f.BoolVar(&s.Woechentlich, "woechentlich", false, o.t("wöchentlich wiederkehrender Platz", "weekly recurring place"))
	f.StringVar(&bis, "bis", "", o.t("letzter Termin eines wöchentlichen Platzes", "last occurrence of a weekly place"))
	f.StringVar(&s.Setting, "setting", "", o.t("EINZEL (Standard), GRUPPE, MEHRPERSONEN", "EINZEL (default), GRUPPE, MEHRPERSONEN"))
	f.StringVar(&s.Modalitaet, "modalitaet", "", o.t("PRAXIS (Standard) oder VIDEO", "PRAXIS (default) or VIDEO"))
	f.StringVar(&s.Voraussetzung, "voraussetzung", "", o.t("KEINE (Standard), PTV11, SPRECHSTUNDE_ERFOLGT", "KEINE (default), PTV11, SPRECHSTUNDE_ERFOLGT"))
	f.IntVar(&s.Plaetze, "plaetze", 0, o.t("freie Plätze einer Gruppe", "free seats of a group"))
	f.Uint16Var(&id, "id", 0, o.t("ersetzt den eigenen Termin mit dieser ID", "replaces the own slot with this ID"))
	return cmd
}

func cmdWithdraw(o *options) *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "withdraw [ID...]",
		Short: o.t("Eigene Termine zurückziehen (--all: das ganze Angebot)", "Withdraw own slots (--all: the whole offer)"),
		Args:  usageArgs(cobra.ArbitraryArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			if all == (len(args) > 0) {
				return usageError{errors.New(o.t("Termin-IDs oder --all angeben", "give slot IDs or --all"))}
			}
			var p rpcapi.FAPPWithdrawParams
			for _, a := range args {
				v, err := strconv.ParseUint(a, 10, 16)
				if err != nil {
					return usageError{fmt.Errorf(o.t("%q ist keine Termin-ID", "%q is not a slot ID"), a)}
				}
				p.Slots = append(p.Slots, uint16(v))
			}
			return o.withClient(cmd, func(ctx context.Context, c *rpcapi.Client) error {
				offer, err := c.FAPPWithdraw(ctx, p)
				if err != nil {
					return err
				}
				return o.printOffer(offer)
			})
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, o.t("das ganze Angebot zurückziehen", "withdraw the whole offer"))
	return cmd
}

func cmdRespond(o *options, action string) *cobra.Command {
	var note, until string
	short := map[string][2]string{
		rpcapi.FAPPConfirm: {"Anfrage bestätigen (BESTAETIGT, signiert)", "Confirm a request (BESTAETIGT, signed)"},
		rpcapi.FAPPDecline: {"Anfrage ablehnen (ABGELEHNT)", "Decline a request (ABGELEHNT)"},
		rpcapi.FAPPHold:    {"Platz für eine Anfrage halten (GEHALTEN)", "Hold the slot for a request (GEHALTEN)"},
	}[action]
	cmd := &cobra.Command{
		Use:   action + " ID",
		Short: o.t(short[0], short[1]),
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			p := rpcapi.FAPPRespondParams{ID: args[0], Action: action, Nachricht: note}
			if until != "" {
				t, err := parseWhen(until)
				if err != nil {
					return usageError{fmt.Errorf("--until: %v", err)}
				}
				p.Until = t
			}
			return o.withClient(cmd, func(ctx context.Context, c *rpcapi.Client) error {
				r, err := c.FAPPRespond(ctx, p)
				if err != nil {
					return err
				}
				return o.printReservation(r)
			})
		},
	}
	cmd.Flags().StringVar(&note, "nachricht", "", o.t("Nachricht an die Patientin/den Patienten (verschlüsselt), z. B. die Adresse", "note to the patient (sealed), e.g. the address"))
	if action == rpcapi.FAPPHold {
		cmd.Flags().StringVar(&until, "until", "", o.t("halten bis (Standard: Haltezeit des Knotens)", "hold until (default: the node's hold time)"))
	}
	return cmd
}

func cmdReservations(o *options, role string) *cobra.Command {
	var states []string
	use, de, en := "reservations", "Anfragen für eigene Termine anzeigen", "List requests for own slots"
	if role == rpcapi.FAPPRolePatient {
		use, de, en = "status", "Eigene Reservierungen und ihren Stand anzeigen", "Show own reservations and their state"
	}
	cmd := &cobra.Command{
		Use:   use,
		Short: o.t(de, en),
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.withClient(cmd, func(ctx context.Context, c *rpcapi.Client) error {
				rs, err := c.FAPPReservations(ctx, rpcapi.FAPPReservationsParams{Role: role, States: splitArgs(states)})
				if err != nil {
					return err
				}
				return o.printReservations(rs)
			})
		},
	}
	cmd.Flags().StringSliceVar(&states, "state", nil, o.t("nur diese Zustände, z. B. ANGEFRAGT,GEHALTEN", "only these states, e.g. ANGEFRAGT,GEHALTEN"))
	return cmd
}

// printReservation prints one reservation: a table row, or with --json
// the object (not a list, so scripts read it directly).
func (o *options) printReservation(r rpcapi.FAPPReservation) error {
	if o.json {
		return o.printJSON(r)
	}
	return o.printReservations([]rpcapi.FAPPReservation{r})
}

func (o *options) printReservations(rs []rpcapi.FAPPReservation) error {
	if o.json {
		return o.printJSON(nonNil(rs))
	}
	if len(rs) == 0 {
		fmt.Fprintln(o.stdout, o.t("keine Reservierungen", "no reservations"))
		return nil
	}
	rows := make([][]string, len(rs))
	for i, r := range rs {
		what, start := "-", r.Start
		if r.Details != nil {
			what = r.Details.Terminart
			if start.IsZero() {
				start = r.Details.Start
			}
		}
		deadline := "-"
		if !r.Expires.IsZero() {
			deadline = o.when(r.Expires)
		}
		rows[i] = []string{r.ID, r.State, what, o.when(start), dash(r.Kontakt), dash(r.Nachricht), deadline}
	}
	return table(o.stdout, o.t("ID\tZUSTAND\tTERMINART\tBEGINN\tKONTAKT\tNACHRICHT\tVERFÄLLT AM",
		"ID\tSTATE\tTERMINART\tSTART\tKONTAKT\tNACHRICHT\tEXPIRES"), rows)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func cmdCancel(o *options, de, en string) *cobra.Command {
	return &cobra.Command{
		Use:   "cancel ID",
		Short: o.t(de, en),
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.withClient(cmd, func(ctx context.Context, c *rpcapi.Client) error {
				r, err := c.FAPPCancel(ctx, rpcapi.FAPPCancelParams{ID: args[0]})
				if err != nil {
					return err
				}
				return o.printReservation(r)
			})
		},
	}
}
