package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"meshd.dev/meshd/simulations/sim"
)

// A sweep that outgrows one machine runs on a batch engine: sweep --emit
// writes every run's resolved scenario (tasks/task-NNNN.toml), a manifest
// (sweep.json) and a Slurm job-array script or a Kubernetes Indexed Job;
// each array task runs `meshsim task DIR INDEX`, which writes DIR/run-NNNN
// as a local sweep does, and `meshsim merge DIR` writes the same sweep.csv
// (and sweep-ci.csv) from them.

// manifestName is the emitted sweep's manifest.
const manifestName = "sweep.json"

// manifest describes an emitted sweep: its parameters and, per run, the
// grid point, the seed, the task's scenario and its output directory
// (relative to the sweep's directory).
type manifest struct {
	Params []manifestParam `json:"params"`
	Seeds  int             `json:"seeds"`
	Runs   []manifestRun   `json:"runs"`
}

type manifestParam struct {
	Key    string   `json:"key"`
	Values []string `json:"values"`
}

type manifestRun struct {
	Index  int      `json:"index"`
	Values []string `json:"values"`
	Seed   uint64   `json:"seed"`
	Task   string   `json:"task"`
	Dir    string   `json:"dir"`
}

// errBatch prefixes the batch commands' errors.
var errBatch = errors.New("meshsim: batch")

// emitOptions are sweep's flags for --emit.
type emitOptions struct {
	kind      string // slurm or k8s
	meshsim   string // the meshsim binary the Slurm tasks run
	image     string // the container image of the Kubernetes Job
	pvc       string // the PersistentVolumeClaim holding the sweep
	name      string // the job's name
	partition string // Slurm partition ("" for the default)
	parallel  int    // tasks at once (0: no limit)
}

func (o *emitOptions) flags(fs *flag.FlagSet) {
	fs.StringVar(&o.kind, "emit", "", "write a batch job instead of running: slurm (a job-array script) or k8s (an Indexed Job)")
	fs.StringVar(&o.meshsim, "meshsim", "", "the meshsim binary the Slurm tasks run (default: this one)")
	fs.StringVar(&o.image, "image", "meshsim:latest", "the container image of the Kubernetes Job (meshsim on its PATH)")
	fs.StringVar(&o.pvc, "pvc", "meshsim-sweep", "the PersistentVolumeClaim that holds the sweep directory in Kubernetes")
	fs.StringVar(&o.name, "name", "meshsim-sweep", "the job's name")
	fs.StringVar(&o.partition, "partition", "", "the Slurm partition (default: the cluster's)")
	fs.IntVar(&o.parallel, "parallel", 0, "tasks running at once (0: as many as the engine allows)")
}

func (o *emitOptions) check() error {
	switch o.kind {
	case "", "slurm", "k8s":
	default:
		return fmt.Errorf("--emit %q: slurm or k8s", o.kind)
	}
	if o.parallel < 0 {
		return fmt.Errorf("--parallel %d: at least 0", o.parallel)
	}
	if !validJobName(o.name) {
		return fmt.Errorf("--name %q: lower-case letters, digits and '-', starting with a letter, at most 52 characters (a Kubernetes Job name)", o.name)
	}
	return nil
}

// validJobName accepts an RFC 1123 label short enough for a Job (whose
// pods add a suffix).
func validJobName(s string) bool {
	if s == "" || len(s) > 52 || s[0] < 'a' || s[0] > 'z' || s[len(s)-1] == '-' {
		return false
	}
	for _, c := range s {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return false
		}
	}
	return true
}

// emit writes the tasks, the manifest and the job of a sweep into out.
func emit(out string, o emitOptions, ps []param, seeds int, runs []*sweepRun, stdout io.Writer) error {
	abs, err := filepath.Abs(out)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(abs, "tasks"), 0o755); err != nil {
		return err
	}
	m := manifest{Seeds: seeds}
	for _, p := range ps {
		m.Params = append(m.Params, manifestParam{Key: p.key, Values: p.values})
	}
	for _, r := range runs {
		b, err := r.sc.Marshal()
		if err != nil {
			return err
		}
		task := filepath.Join("tasks", fmt.Sprintf("task-%04d.toml", r.index))
		if err := os.WriteFile(filepath.Join(abs, task), b, 0o644); err != nil {
			return err
		}
		m.Runs = append(m.Runs, manifestRun{Index: r.index, Values: r.values, Seed: r.seed, Task: task, Dir: filepath.Base(r.dir)})
	}
	js, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(abs, manifestName), append(js, '\n'), 0o644); err != nil {
		return err
	}
	var file string
	switch o.kind {
	case "slurm":
		file, err = writeSlurm(abs, o, len(runs))
	case "k8s":
		file, err = writeK8s(abs, o, len(runs))
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "sweep           %d tasks (%d grid points x %d seeds) for %s\n", len(runs), len(runs)/seeds, seeds, o.kind)
	fmt.Fprintf(stdout, "job             %s\n", file)
	fmt.Fprintf(stdout, "then            meshsim merge %s\n", abs)
	return nil
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// writeSlurm writes sweep.slurm: a job array with one task per run, each
// running `meshsim task` on its index. The sweep directory must be on a
// file system the compute nodes share.
func writeSlurm(dir string, o emitOptions, n int) (string, error) {
	bin := o.meshsim
	if bin == "" {
		exe, err := os.Executable()
		if err != nil {
			return "", err
		}
		bin = exe
	}
	array := fmt.Sprintf("0-%d", n-1)
	if o.parallel > 0 {
		array += "%" + strconv.Itoa(o.parallel)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "#!/bin/sh\n# A meshsim sweep of %d runs as a Slurm job array: submit with\n#   sbatch %s\n# and, when every task has finished, merge with\n#   meshsim merge %s\n", n, filepath.Join(dir, "sweep.slurm"), dir)
	fmt.Fprintf(&b, "#SBATCH --job-name=%s\n#SBATCH --array=%s\n#SBATCH --ntasks=1\n#SBATCH --cpus-per-task=1\n", o.name, array)
	fmt.Fprintf(&b, "#SBATCH --output=%s\n", filepath.Join(dir, "logs", "task-%a.out"))
	if o.partition != "" {
		fmt.Fprintf(&b, "#SBATCH --partition=%s\n", o.partition)
	}
	fmt.Fprintf(&b, "set -eu\nMESHSIM=${MESHSIM:-%s}\nexec \"$MESHSIM\" task %s \"$SLURM_ARRAY_TASK_ID\"\n", shellQuote(bin), shellQuote(dir))
	if err := os.MkdirAll(filepath.Join(dir, "logs"), 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(dir, "sweep.slurm")
	return path, os.WriteFile(path, []byte(b.String()), 0o755)
}

// k8sJob is the part of a Kubernetes batch/v1 Job that the manifest uses
// (field names as in the API; the test decodes it into k8s.io/api's own
// types with unknown fields refused).
type k8sJob struct {
	APIVersion string     `json:"apiVersion"`
	Kind       string     `json:"kind"`
	Metadata   k8sMeta    `json:"metadata"`
	Spec       k8sJobSpec `json:"spec"`
}

type k8sMeta struct {
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels,omitempty"`
}

type k8sJobSpec struct {
	CompletionMode string         `json:"completionMode"`
	Completions    int            `json:"completions"`
	Parallelism    int            `json:"parallelism"`
	BackoffLimit   int            `json:"backoffLimitPerIndex"`
	Template       k8sPodTemplate `json:"template"`
}

type k8sPodTemplate struct {
	Metadata k8sMeta    `json:"metadata"`
	Spec     k8sPodSpec `json:"spec"`
}

type k8sPodSpec struct {
	RestartPolicy string         `json:"restartPolicy"`
	Containers    []k8sContainer `json:"containers"`
	Volumes       []k8sVolume    `json:"volumes"`
}

type k8sContainer struct {
	Name         string           `json:"name"`
	Image        string           `json:"image"`
	Command      []string         `json:"command"`
	Args         []string         `json:"args"`
	Env          []k8sEnv         `json:"env"`
	VolumeMounts []k8sVolumeMount `json:"volumeMounts"`
	Resources    k8sResources     `json:"resources"`
}

type k8sEnv struct {
	Name      string       `json:"name"`
	ValueFrom k8sEnvSource `json:"valueFrom"`
}

type k8sEnvSource struct {
	FieldRef k8sFieldRef `json:"fieldRef"`
}

type k8sFieldRef struct {
	FieldPath string `json:"fieldPath"`
}

type k8sVolumeMount struct {
	Name      string `json:"name"`
	MountPath string `json:"mountPath"`
}

type k8sVolume struct {
	Name string       `json:"name"`
	PVC  k8sPVCSource `json:"persistentVolumeClaim"`
}

type k8sPVCSource struct {
	ClaimName string `json:"claimName"`
}

type k8sResources struct {
	Requests map[string]string `json:"requests"`
}

// k8sMount is where the sweep's volume is mounted in the pods.
const k8sMount = "/sweep"

// writeK8s writes sweep-job.json: an Indexed Job (JSON is YAML: kubectl
// apply -f takes it) whose pods each run `meshsim task` on their
// completion index, with the sweep directory on a PersistentVolumeClaim
// (copy the emitted directory onto it first: the task paths are relative).
func writeK8s(dir string, o emitOptions, n int) (string, error) {
	par := n
	if o.parallel > 0 {
		par = min(o.parallel, n)
	}
	labels := map[string]string{"app.kubernetes.io/name": "meshsim", "app.kubernetes.io/instance": o.name}
	job := k8sJob{
		APIVersion: "batch/v1", Kind: "Job",
		Metadata: k8sMeta{Name: o.name, Labels: labels},
		Spec: k8sJobSpec{
			CompletionMode: "Indexed", Completions: n, Parallelism: par, BackoffLimit: 1,
			Template: k8sPodTemplate{
				Metadata: k8sMeta{Labels: labels},
				Spec: k8sPodSpec{
					RestartPolicy: "Never",
					Containers: []k8sContainer{{
						Name: "meshsim", Image: o.image, Command: []string{"meshsim"},
						Args: []string{"task", k8sMount, "$(MESHSIM_TASK)"},
						Env: []k8sEnv{{Name: "MESHSIM_TASK", ValueFrom: k8sEnvSource{FieldRef: k8sFieldRef{
							FieldPath: "metadata.annotations['batch.kubernetes.io/job-completion-index']"}}}},
						VolumeMounts: []k8sVolumeMount{{Name: "sweep", MountPath: k8sMount}},
						// Every simulation is single-threaded.
						Resources: k8sResources{Requests: map[string]string{"cpu": "1"}},
					}},
					Volumes: []k8sVolume{{Name: "sweep", PVC: k8sPVCSource{ClaimName: o.pvc}}},
				},
			},
		},
	}
	js, err := json.MarshalIndent(job, "", "  ")
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "sweep-job.json")
	return path, os.WriteFile(path, append(js, '\n'), 0o644)
}

// readManifest reads an emitted sweep's manifest.
func readManifest(dir string) (*manifest, error) {
	b, err := os.ReadFile(filepath.Join(dir, manifestName))
	if err != nil {
		return nil, fmt.Errorf("%w: %w (not a sweep emitted with --emit?)", errBatch, err)
	}
	var m manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", errBatch, manifestName, err)
	}
	if len(m.Runs) == 0 || m.Seeds < 1 {
		return nil, fmt.Errorf("%w: %s lists no runs", errBatch, manifestName)
	}
	for i, r := range m.Runs {
		if r.Index != i || len(r.Values) != len(m.Params) || !localPath(r.Task) || !localPath(r.Dir) {
			return nil, fmt.Errorf("%w: %s: run %d is malformed", errBatch, manifestName, i)
		}
	}
	return &m, nil
}

// localPath accepts a relative path that stays inside the sweep directory.
func localPath(p string) bool {
	return p != "" && !filepath.IsAbs(p) && filepath.IsLocal(p)
}

// taskCmd runs one task of an emitted sweep: meshsim task DIR [INDEX]
// (INDEX defaults to $SLURM_ARRAY_TASK_ID or $JOB_COMPLETION_INDEX).
func taskCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("meshsim task", flag.ContinueOnError)
	fs.SetOutput(stderr)
	plots := fs.Bool("plots", false, "write the run's plots too")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) < 1 || len(pos) > 2 {
		return errUsage
	}
	idx := ""
	if len(pos) == 2 {
		idx = pos[1]
	} else if idx = os.Getenv("SLURM_ARRAY_TASK_ID"); idx == "" {
		idx = os.Getenv("JOB_COMPLETION_INDEX")
	}
	m, err := readManifest(pos[0])
	if err != nil {
		return err
	}
	i, err := strconv.Atoi(idx)
	if err != nil || i < 0 || i >= len(m.Runs) {
		return fmt.Errorf("%w: task index %q not in 0..%d", errBatch, idx, len(m.Runs)-1)
	}
	mr := m.Runs[i]
	sc, err := sim.Load(filepath.Join(pos[0], mr.Task), nil)
	if err != nil {
		return err
	}
	r := &sweepRun{index: i, dir: filepath.Join(pos[0], mr.Dir), values: mr.Values, seed: mr.Seed, sc: sc}
	if err := r.run(*plots); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "task %d: %s\n", i, r.dir)
	return nil
}

// mergeCmd combines the runs of an emitted sweep: meshsim merge DIR
// writes DIR/sweep.csv and DIR/sweep-ci.csv as a local sweep does.
func mergeCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("meshsim merge", flag.ContinueOnError)
	fs.SetOutput(stderr)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return errUsage
	}
	dir := pos[0]
	m, err := readManifest(dir)
	if err != nil {
		return err
	}
	var ps []param
	for _, p := range m.Params {
		ps = append(ps, param{key: p.Key, values: p.Values})
	}
	var runs []*sweepRun
	var missing []string
	for _, mr := range m.Runs {
		r := &sweepRun{index: mr.Index, dir: filepath.Join(dir, mr.Dir), values: mr.Values, seed: mr.Seed}
		b, err := os.ReadFile(filepath.Join(r.dir, "summary.json"))
		if err != nil {
			missing = append(missing, strconv.Itoa(mr.Index))
			continue
		}
		if err := json.Unmarshal(b, &r.sum); err != nil {
			return fmt.Errorf("%w: %s: %w", errBatch, filepath.Join(r.dir, "summary.json"), err)
		}
		runs = append(runs, r)
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: %d of %d tasks have no summary.json (tasks %s): rerun them with meshsim task %s INDEX",
			errBatch, len(missing), len(m.Runs), strings.Join(missing, ","), dir)
	}
	if err := writeSweepCSV(filepath.Join(dir, "sweep.csv"), ps, runs); err != nil {
		return err
	}
	if err := writeSweepCI(filepath.Join(dir, "sweep-ci.csv"), ps, runs); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "merged          %d runs (%d grid points x %d seeds)\n", len(runs), len(runs)/m.Seeds, m.Seeds)
	fmt.Fprintf(stdout, "outputs         %s, %s\n", filepath.Join(dir, "sweep.csv"), filepath.Join(dir, "sweep-ci.csv"))
	return nil
}
