package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"

	"github.com/jirabridge/jirabridge/internal/config"
	"github.com/jirabridge/jirabridge/internal/handshake"
	"github.com/jirabridge/jirabridge/internal/store"
)

// setup is what the lifecycle commands share: the process settings, the
// sync definition and the open store.
type setup struct {
	cfg *config.Config
	def *config.SyncDef
	st  *store.Store
	log *slog.Logger
}

func (s *setup) Close() {
	if s.st != nil {
		s.st.Close()
	}
}

// loadSetup reads the settings and the sync definition (required: every
// lifecycle command needs the sync's name and project) and opens the store
// in JIRABRIDGE_DATA_DIR. On failure it prints every problem and returns
// the exit status.
func loadSetup(env Env, cmd string) (*setup, int) {
	cfg, err := config.Load(env.Getenv)
	problems := splitProblems(err)
	var def *config.SyncDef
	if cfg != nil {
		if cfg.SyncFile == "" {
			problems = append(problems, "JIRABRIDGE_SYNC_FILE is not set: name the sync definition file (see docs/sync-definition.md)")
		} else {
			var serr error
			def, serr = config.LoadSyncFile(cfg.SyncFile)
			problems = append(problems, splitProblems(serr)...)
		}
	}
	if len(problems) > 0 {
		fmt.Fprintf(env.Stderr, "%s: the configuration has %d problem(s):\n", cmd, len(problems))
		for _, p := range problems {
			fmt.Fprintf(env.Stderr, "  - %s\n", p)
		}
		fmt.Fprintln(env.Stderr, "Run 'jirabridge config check' for details; see docs/setup.md.")
		return nil, ExitUsage
	}
	log := newLogger(env.Stderr, cfg)
	st, err := store.Open(ctxOf(env), filepath.Join(cfg.DataDir, store.FileName), &store.Options{Logger: log})
	if err != nil {
		fmt.Fprintf(env.Stderr, "%s: open the store in %s: %v\n", cmd, cfg.DataDir, err)
		return nil, ExitFailure
	}
	return &setup{cfg: cfg, def: def, st: st, log: log}, ExitOK
}

func newLogger(w io.Writer, cfg *config.Config) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.SlogLevel()}
	if cfg.LogFormat == config.LogJSON {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func ctxOf(env Env) context.Context {
	if env.Context != nil {
		return env.Context
	}
	return context.Background()
}

// thisSync returns the sync this bridge runs: the one named in the sync
// definition.
func (s *setup) thisSync(ctx context.Context) (store.Sync, error) {
	var out store.Sync
	err := s.st.View(ctx, func(tx *store.Tx) error {
		var err error
		out, err = handshake.SyncByName(tx, s.def.Name)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return out, fmt.Errorf("%w; create it with jirabridge init (master) or jirabridge join HANDSHAKE (slave), with the same JIRABRIDGE_DATA_DIR", err)
	}
	return out, err
}

// fixed is the project and sync user this process is configured with.
func (s *setup) fixed() handshake.Fixed {
	return handshake.Fixed{ProjectKey: s.def.Project, SyncUser: s.cfg.Jira.User}
}

func cmdInit(env Env, args []string) int {
	fs := newFlagSet(env, "init", "init [--out FILE]\n\n"+
		"Creates the sync of the sync definition as the master: generates this bridge's\n"+
		"keys (kept only in the store) and writes the handshake file to hand to the\n"+
		"partner, who runs 'jirabridge join FILE'.")
	out := fs.String("out", "", "where to write the handshake file (default jirabridge-handshake-NAME.json in the current directory)")
	if ok, code := parseFlagsOnly(env, fs, args); !ok {
		return code
	}
	s, code := loadSetup(env, "init")
	if s == nil {
		return code
	}
	defer s.Close()
	p := handshake.InitParams{
		Name: s.def.Name, ProjectKey: s.def.Project, SyncUser: s.cfg.Jira.User, Transport: string(s.cfg.Transport),
	}
	if s.cfg.Transport == config.TransportFile {
		p.FileDropNote = fmt.Sprintf("the master writes envelopes to its directory %s and reads the slave's from %s; carry the files between the two sites",
			s.cfg.FileDrop.OutgoingDir, s.cfg.FileDrop.IncomingDir)
	} else {
		p.Address = s.cfg.SMTP.From
	}
	if *out == "" {
		*out = "jirabridge-handshake-" + s.def.Name + ".json"
	}
	var f handshake.File
	err := s.st.Update(ctxOf(env), func(tx *store.Tx) error {
		var err error
		f, err = handshake.Init(tx, p)
		if err != nil {
			return err
		}
		// Written inside the transaction: if the file cannot be written,
		// the sync is not created and init can simply run again.
		return f.WriteFile(*out)
	})
	if err != nil {
		fmt.Fprintf(env.Stderr, "init: %v\n", err)
		if errors.Is(err, handshake.ErrExists) {
			return ExitUsage
		}
		return ExitFailure
	}
	fmt.Fprintf(env.Stdout, "Created sync %q (id %s) as the master, project %s, sync user %s, transport %s.\n",
		f.SyncName, f.SyncID, p.ProjectKey, p.SyncUser, p.Transport)
	fmt.Fprintf(env.Stdout, "Wrote the handshake file %s (mode 0600; no private key, a one-time secret).\n", *out)
	fmt.Fprintln(env.Stdout, "Next:")
	fmt.Fprintln(env.Stdout, "  1. Give the file to the partner's administrator over a channel you trust; they run: jirabridge join FILE")
	fmt.Fprintln(env.Stdout, "  2. Keep this bridge running (jirabridge run) until 'jirabridge status' shows STOPPED.")
	fmt.Fprintln(env.Stdout, "  3. Run 'jirabridge publish' to send the aliases of your sync definition.")
	return ExitOK
}
