// Fapp is the command-line client of FAPP, the Free Appointment Propagation
// Protocol: therapists publish free psychotherapy places from their meshd
// node, patients search and reserve them anonymously from theirs, and
// issuers (a chamber, a KV, a community registry) issue and revoke the
// license credentials nodes trust. It talks to a running meshd over the
// JSON-RPC unix socket in the daemon's data directory (the issuer commands
// work on the issuer's own files and need no daemon) and holds no protocol
// logic of its own. Help and tables are in German or English (--lang, or
// LANG); times are shown in Europe/Berlin.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
	_ "time/tzdata" // Europe/Berlin on systems without a zoneinfo database

	"github.com/spf13/cobra"

	"meshd.dev/meshd/rpcapi"
)

func main() {
	os.Exit(Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// Exit codes (as meshctl's).
const (
	exitOK       = 0
	exitError    = 1 // the daemon answered with an error, or I/O failed
	exitUsage    = 2 // wrong command line
	exitNoDaemon = 3 // meshd is not running on that data directory
)

// berlin is where therapy happens: every time is shown in it, and times
// typed without a zone are read in it.
var berlin = mustBerlin()

func mustBerlin() *time.Location {
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		panic(err) // cannot happen: time/tzdata is embedded
	}
	return loc
}

type options struct {
	dataDir string
	json    bool
	timeout time.Duration
	lang    string // "de" or "en"
	stdin   io.Reader
	stdout  io.Writer
}

// t picks the German or the English text.
func (o *options) t(de, en string) string {
	if o.lang == "de" {
		return de
	}
	return en
}

// usageError marks command-line mistakes (exit 2).
type usageError struct{ error }

type noDaemonError struct{ error }

// Main runs fapp and returns its exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	o := &options{stdin: stdin, stdout: stdout, lang: language(args, os.Getenv)}
	root := newRoot(o)
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(stderr, "fapp: %v\n", err)
	var ue usageError
	var ne noDaemonError
	switch {
	case errors.As(err, &ue):
		return exitUsage
	case errors.As(err, &ne):
		return exitNoDaemon
	case strings.HasPrefix(err.Error(), "unknown command"), strings.HasPrefix(err.Error(), "required flag"):
		// cobra's own errors for a wrong command line
		return exitUsage
	}
	return exitError
}

// language is the --lang flag if given (it must be known before the help
// texts are built), else German when LC_ALL, LC_MESSAGES or LANG (the first
// set) starts with "de", else English.
func language(args []string, getenv func(string) string) string {
	for i, a := range args {
		if a == "--" {
			break
		}
		if v, ok := strings.CutPrefix(a, "--lang="); ok {
			return normLang(v)
		}
		if a == "--lang" && i+1 < len(args) {
			return normLang(args[i+1])
		}
	}
	for _, k := range []string{"LC_ALL", "LC_MESSAGES", "LANG"} {
		if v := getenv(k); v != "" {
			return normLang(v)
		}
	}
	return "en"
}

func normLang(v string) string {
	if strings.HasPrefix(strings.ToLower(v), "de") {
		return "de"
	}
	return "en"
}

func newRoot(o *options) *cobra.Command {
	root := &cobra.Command{
		Use: "fapp",
		Short: o.t("Freie Psychotherapieplätze im Mesh anbieten, finden und reservieren",
			"Offer, find and reserve free psychotherapy places in the mesh"),
		Long: o.t(`fapp spricht mit einem laufenden meshd über den JSON-RPC-Socket in dessen
Datenverzeichnis (<data-dir>/api.sock); verwenden Sie dasselbe --data-dir (oder
MESHD_DATA_DIR) wie der Daemon. Die issuer-Befehle arbeiten nur auf den Dateien
des Ausstellers und brauchen keinen Daemon. Zeiten gelten in Europe/Berlin.`,
			`fapp talks to a running meshd over the JSON-RPC unix socket in its data
directory (<data-dir>/api.sock); use the same --data-dir (or MESHD_DATA_DIR)
as the daemon. The issuer commands work on the issuer's own files and need no
daemon. Times are Europe/Berlin.`),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	def := os.Getenv("MESHD_DATA_DIR")
	if def == "" {
		def = rpcapi.DefaultDataDir()
	}
	pf := root.PersistentFlags()
	pf.StringVar(&o.dataDir, "data-dir", def, o.t("Datenverzeichnis des Daemons (env MESHD_DATA_DIR)", "the daemon's data directory (env MESHD_DATA_DIR)"))
	pf.BoolVar(&o.json, "json", false, o.t("JSON statt Tabellen ausgeben (für Skripte)", "print JSON instead of tables (for scripts)"))
	pf.DurationVar(&o.timeout, "timeout", 30*time.Second, o.t("nach dieser Zeit aufgeben", "give up after this long"))
	pf.StringVar(&o.lang, "lang", o.lang, o.t("Sprache: de oder en (Standard aus LANG)", "language: de or en (default from LANG)"))
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	if o.lang == "de" {
		root.SetUsageTemplate(germanUsage(root.UsageTemplate()))
	}
	root.AddCommand(cmdIssuer(o), cmdTherapist(o), cmdPatient(o), cmdWeb(o), cmdFollow(o, true), cmdFollow(o, false),
		cmdRegions(o), cmdIssuers(o), cmdRevocation(o))
	return root
}

// germanUsage translates the headings of cobra's usage template.
func germanUsage(tmpl string) string {
	return strings.NewReplacer(
		"Usage:", "Aufruf:",
		"Aliases:", "Aliasse:",
		"Examples:", "Beispiele:",
		"Available Commands:", "Befehle:",
		"Additional Commands:", "Weitere Befehle:",
		"Global Flags:", "Globale Flags:",
		"Additional help topics:", "Weitere Hilfethemen:",
		`Use "{{.CommandPath}} [command] --help" for more information about a command.`,
		`Hilfe zu einem Befehl: "{{.CommandPath}} [Befehl] --help"`,
		"{{.CommandPath}} [command]", "{{.CommandPath}} [Befehl]",
	).Replace(tmpl)
}

// usageArgs makes an argument-count error a usage error (exit 2).
func usageArgs(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := check(cmd, args); err != nil {
			return usageError{err}
		}
		return nil
	}
}

// group is a command that only holds subcommands.
func group(o *options, use, shortDE, shortEN string, subs ...*cobra.Command) *cobra.Command {
	cmd := &cobra.Command{
		Use:   use,
		Short: o.t(shortDE, shortEN),
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			names := make([]string, 0, len(subs))
			for _, s := range subs {
				names = append(names, s.Name())
			}
			return usageError{fmt.Errorf(o.t("%s braucht einen Unterbefehl: %s", "%s needs a subcommand: %s"), use, strings.Join(names, ", "))}
		},
	}
	cmd.AddCommand(subs...)
	return cmd
}

// dial connects to the daemon of o.dataDir.
func (o *options) dial(ctx context.Context) (*rpcapi.Client, error) {
	c, err := rpcapi.DialDataDir(ctx, o.dataDir)
	switch {
	case err == nil:
		return c, nil
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ECONNREFUSED):
		return nil, noDaemonError{fmt.Errorf(o.t("meshd ist nicht erreichbar: %v (starten mit: meshd --data-dir %s)",
			"cannot reach meshd: %v (start it with: meshd --data-dir %s)"), err, o.dataDir)}
	case errors.Is(err, fs.ErrPermission):
		return nil, fmt.Errorf(o.t("%v (der Socket gehört dem Benutzer, unter dem meshd läuft)",
			"%v (the socket belongs to the user meshd runs as; run fapp as that user)"), err)
	}
	return nil, err
}

// withClient runs f with a connected client and a deadline.
func (o *options) withClient(cmd *cobra.Command, f func(ctx context.Context, c *rpcapi.Client) error) error {
	ctx, cancel := context.WithTimeout(cmd.Context(), o.timeout)
	defer cancel()
	c, err := o.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	return f(ctx, c)
}

func (o *options) printJSON(v any) error {
	enc := json.NewEncoder(o.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// readArg returns arg, or standard input when arg is "-" (for pasted
// credentials and lists).
func (o *options) readArg(arg string) (string, error) {
	if arg != "-" {
		return arg, nil
	}
	b, err := io.ReadAll(io.LimitReader(o.stdin, rpcapi.MaxFAPPText+1))
	if err != nil {
		return "", fmt.Errorf("reading standard input: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}
