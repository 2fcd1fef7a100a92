package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"meshd.dev/meshd/rpcapi"
	"meshd.dev/meshd/rpcapi/fappissuer"
)

// cmdIssuer is "fapp issuer ...": a credential issuer's own files. These
// commands need no daemon: the issuer key stays on the issuer's machine.
func cmdIssuer(o *options) *cobra.Command {
	var dir string
	init := &cobra.Command{
		Use:   "init",
		Short: o.t("Neuen Ausstellerschlüssel im Verzeichnis --dir anlegen", "Create a new issuer key in --dir"),
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			is, err := fappissuer.Init(dir)
			if err != nil {
				return err
			}
			if o.json {
				return o.printJSON(map[string]string{"key": is.PublicKey(), "id": is.ID()})
			}
			fmt.Fprintf(o.stdout, o.t("Aussteller angelegt in %s\nÖffentlicher Schlüssel (für trusted_issuers in [fapp] der meshd-Konfiguration):\n%s\n",
				"issuer created in %s\npublic key (for trusted_issuers in [fapp] of meshd's configuration):\n%s\n"), dir, is.PublicKey())
			return nil
		},
	}
	issue := cmdIssue(o, &dir)
	revoke := &cobra.Command{
		Use:   "revoke SERIAL...",
		Short: o.t("Nachweise widerrufen und die signierte Widerrufsliste ausgeben", "Revoke credentials and print the signed revocation list"),
		Args:  usageArgs(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			serials := make([]uint64, len(args))
			for i, a := range args {
				v, err := strconv.ParseUint(a, 10, 64)
				if err != nil {
					return usageError{fmt.Errorf(o.t("%q ist keine Seriennummer", "%q is not a serial number"), a)}
				}
				serials[i] = v
			}
			is, err := fappissuer.Open(dir)
			if err != nil {
				return err
			}
			r, err := is.Revoke(serials, time.Now())
			if err != nil {
				return err
			}
			if o.json {
				return o.printJSON(r)
			}
			fmt.Fprintln(o.stdout, r.Text)
			return nil
		},
	}
	ls := &cobra.Command{
		Use:   "list",
		Short: o.t("Ausgestellte Nachweise auflisten", "List the credentials issued"),
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			is, err := fappissuer.Open(dir)
			if err != nil {
				return err
			}
			entries, err := is.Ledger()
			if err != nil {
				return err
			}
			if o.json {
				return o.printJSON(nonNil(entries))
			}
			rows := make([][]string, len(entries))
			for i, e := range entries {
				rows[i] = []string{strconv.FormatUint(e.Serial, 10), e.RegistryID, e.Berufsgruppe, o.date(e.ValidFrom), o.date(e.ValidTo), yes(o, e.Revoked)}
			}
			return table(o.stdout, o.t("SERIE\tREGISTER-ID\tBERUFSGRUPPE\tAB\tBIS\tWIDERRUFEN", "SERIAL\tREGISTRY ID\tBERUFSGRUPPE\tFROM\tTO\tREVOKED"), rows)
		},
	}
	cmd := group(o, "issuer", "Nachweise als Aussteller (Kammer, KV, Register) ausstellen und widerrufen",
		"Issue and revoke credentials as an issuer (chamber, KV, registry)", init, issue, revoke, ls)
	cmd.Long = o.t(`Ein Aussteller (Psychotherapeutenkammer, KV oder ein Register) bestätigt mit
einem signierten Nachweis, dass die Schlüssel eines Therapeutenknotens einer
approbierten Person mit dieser Register-ID gehören. Der private Schlüssel
bleibt in --dir auf dem Rechner des Ausstellers; Knotenbetreiber tragen den
öffentlichen Schlüssel als vertrauenswürdig ein.`,
		`An issuer (a chamber of psychotherapists, a KV or a registry) vouches with a
signed credential that a therapist node's keys belong to a licensed person
with this registry ID. The private key stays in --dir on the issuer's
machine; node operators configure the public key as trusted.`)
	cmd.PersistentFlags().StringVar(&dir, "dir", "fapp-issuer", o.t("Verzeichnis mit Schlüssel und Liste des Ausstellers", "the issuer's directory (key and ledger)"))
	return cmd
}

func cmdIssue(o *options, dir *string) *cobra.Command {
	var identity, beruf, registry, from, to string
	cmd := &cobra.Command{
		Use:   "issue",
		Short: o.t("Nachweis für die Schlüssel eines Therapeutenknotens ausstellen", "Issue a credential for a therapist node's keys"),
		Long: o.t(`Gibt den Nachweis als Text (fapp-credential:...) aus; die Therapeutin importiert
ihn mit "fapp therapist credential import". --identity ist die Zeile, die
"fapp therapist credential" auf ihrem Knoten zeigt (- liest sie von stdin).`,
			`Prints the credential as text (fapp-credential:...); the therapist imports it
with "fapp therapist credential import". --identity is the line
"fapp therapist credential" shows on their node (- reads it from stdin).`),
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			id, err := o.readArg(identity)
			if err != nil {
				return err
			}
			if _, err := rpcapi.ParseFAPPIdentity(id); err != nil {
				return usageError{fmt.Errorf("--identity: %v", err)}
			}
			req := fappissuer.Request{Identity: id, Berufsgruppe: beruf, RegistryID: registry, ValidFrom: time.Now()}
			if from != "" {
				if req.ValidFrom, err = parseWhen(from); err != nil {
					return usageError{fmt.Errorf("--valid-from: %v", err)}
				}
			}
			if req.ValidTo, err = parseWhen(to); err != nil {
				return usageError{fmt.Errorf("--valid-to: %v", err)}
			}
			is, err := fappissuer.Open(*dir)
			if err != nil {
				return err
			}
			e, text, err := is.Issue(req)
			if errors.Is(err, fappissuer.ErrInput) {
				return usageError{err}
			}
			if err != nil {
				return err
			}
			if o.json {
				return o.printJSON(struct {
					fappissuer.Entry
					Credential string `json:"credential"`
				}{e, text})
			}
			fmt.Fprintln(o.stdout, text)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&identity, "identity", "", o.t("Identität des Therapeutenknotens (fapp-identity:...), - für stdin", "the therapist node's identity (fapp-identity:...), - for stdin"))
	f.StringVar(&beruf, "beruf", "", o.t("Berufsgruppe, z. B. PSYCHOLOGISCHER_PSYCHOTHERAPEUT", "Berufsgruppe, e.g. PSYCHOLOGISCHER_PSYCHOTHERAPEUT"))
	f.StringVar(&registry, "registry-id", "", o.t("Register- oder Approbations-ID (z. B. Telematik-ID)", "registry or license ID (e.g. a Telematik-ID)"))
	f.StringVar(&from, "valid-from", "", o.t("gültig ab (Standard: jetzt)", "valid from (default: now)"))
	f.StringVar(&to, "valid-to", "", o.t("gültig bis, z. B. 2028-12-31", "valid to, e.g. 2028-12-31"))
	for _, name := range []string{"identity", "beruf", "registry-id", "valid-to"} {
		cmd.MarkFlagRequired(name)
	}
	return cmd
}

// cmdIssuers is "fapp issuers": the issuers the node trusts.
func cmdIssuers(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "issuers",
		Short: o.t("Vertrauenswürdige Aussteller des Knotens anzeigen", "List the issuers the node trusts"),
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.withClient(cmd, func(ctx context.Context, c *rpcapi.Client) error {
				is, err := c.FAPPIssuers(ctx)
				if err != nil {
					return err
				}
				if o.json {
					return o.printJSON(is)
				}
				if len(is) == 0 {
					fmt.Fprintln(o.stdout, o.t("keine vertrauenswürdigen Aussteller konfiguriert", "no trusted issuers configured"))
					return nil
				}
				rows := make([][]string, len(is))
				for i, x := range is {
					rows[i] = []string{x.Key, x.ID, strconv.FormatUint(uint64(x.RevocationSequence), 10), strconv.Itoa(x.Revoked)}
				}
				return table(o.stdout, o.t("SCHLÜSSEL\tID\tWIDERRUFSLISTE\tWIDERRUFEN", "KEY\tID\tREVOCATION LIST\tREVOKED"), rows)
			})
		},
	}
}

// cmdRevocation is "fapp revocation TEXT": apply an issuer's list on the node.
func cmdRevocation(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "revocation LIST",
		Short: o.t("Widerrufsliste eines Ausstellers im Knoten anwenden (- liest stdin)", "Apply an issuer's revocation list on the node (- reads stdin)"),
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			text, err := o.readArg(args[0])
			if err != nil {
				return err
			}
			if _, err := rpcapi.ParseFAPPText(rpcapi.FAPPRevocationPrefix, text); err != nil {
				return usageError{err}
			}
			return o.withClient(cmd, func(ctx context.Context, c *rpcapi.Client) error {
				is, err := c.FAPPRevocationImport(ctx, text)
				if err != nil {
					return err
				}
				if o.json {
					return o.printJSON(is)
				}
				fmt.Fprintf(o.stdout, o.t("Widerrufsliste %d von %s angewandt: %d widerrufen\n", "revocation list %d of %s applied: %d revoked\n"),
					is.RevocationSequence, is.ID, is.Revoked)
				return nil
			})
		},
	}
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// splitArgs splits comma-separated flag values and drops empty ones.
func splitArgs(vs []string) []string {
	var out []string
	for _, v := range vs {
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}
