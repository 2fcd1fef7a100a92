package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
)

func emitArgs(dir string, extra ...string) []string {
	return append([]string{"sweep", "../../scenarios/quickstart.toml", "--out", dir, "--quiet",
		"--set", "duration=6m", "--set", "traffic.start=1m", "--set", "traffic.rate=0.01",
		"--param", "radio.sf=7,8", "--seeds", "2"}, extra...)
}

// TestEmitSlurmTaskMerge: the emitted tasks, each run with meshsim task
// as a Slurm array task runs it, merge into the same sweep.csv as a local
// sweep of the same grid; sweep-ci.csv has one row per grid point.
func TestEmitSlurmTaskMerge(t *testing.T) {
	local, batch := t.TempDir(), t.TempDir()
	var stdout, stderr bytes.Buffer
	if err := run(emitArgs(local), &stdout, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	if err := run(emitArgs(batch, "--emit", "slurm", "--meshsim", "/opt/meshsim", "--parallel", "2"), &stdout, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	script, err := os.ReadFile(filepath.Join(batch, "sweep.slurm"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"#SBATCH --array=0-3%2\n", "MESHSIM=${MESHSIM:-'/opt/meshsim'}", `task '` + batch + `' "$SLURM_ARRAY_TASK_ID"`} {
		if !strings.Contains(string(script), want) {
			t.Errorf("sweep.slurm lacks %q:\n%s", want, script)
		}
	}
	if m, _ := filepath.Glob(filepath.Join(batch, "run-*")); len(m) > 0 {
		t.Fatal("--emit ran the simulations")
	}
	// Merging before every task ran names the missing ones.
	if err := run([]string{"merge", batch}, &stdout, &stderr); err == nil || !strings.Contains(err.Error(), "tasks 0,1,2,3") {
		t.Fatalf("merge of no runs: %v", err)
	}
	for i := range 4 {
		if i%2 == 0 {
			t.Setenv("SLURM_ARRAY_TASK_ID", strconv.Itoa(i))
			err = run([]string{"task", batch}, &stdout, &stderr)
		} else {
			err = run([]string{"task", batch, strconv.Itoa(i)}, &stdout, &stderr)
		}
		if err != nil {
			t.Fatalf("task %d: %v", i, err)
		}
	}
	if err := run([]string{"merge", batch}, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"sweep.csv", "sweep-ci.csv"} {
		a, _ := os.ReadFile(filepath.Join(local, f))
		b, err := os.ReadFile(filepath.Join(batch, f))
		if err != nil || !bytes.Equal(a, b) {
			t.Errorf("%s differs between the local sweep and the merged tasks (%v):\n%s\n%s", f, err, a, b)
		}
	}
	ci, _ := os.ReadFile(filepath.Join(batch, "sweep-ci.csv"))
	if lines := strings.Split(strings.TrimSpace(string(ci)), "\n"); len(lines) != 3 || !strings.HasPrefix(lines[1], "7,2,") {
		t.Errorf("sweep-ci.csv:\n%s", ci)
	}
	for _, bad := range [][]string{{"task", batch, "4"}, {"task", batch, "x"}, {"task", t.TempDir(), "0"}, {"merge", t.TempDir()}} {
		if err := run(bad, &stdout, &stderr); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// TestEmitK8sJob: the Indexed Job decodes into k8s.io/api's batch/v1 Job
// with unknown fields refused, and has what an Indexed Job needs.
func TestEmitK8sJob(t *testing.T) {
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	if err := run(emitArgs(dir, "--emit", "k8s", "--image", "registry.example/meshsim:1", "--pvc", "sims", "--name", "sf-sweep"), &stdout, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	b, err := os.ReadFile(filepath.Join(dir, "sweep-job.json"))
	if err != nil {
		t.Fatal(err)
	}
	var job batchv1.Job
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&job); err != nil {
		t.Fatalf("not a batch/v1 Job: %v\n%s", err, b)
	}
	sp := job.Spec
	switch {
	case job.APIVersion != "batch/v1" || job.Kind != "Job" || job.Name != "sf-sweep":
		t.Errorf("type or name: %s %s %s", job.APIVersion, job.Kind, job.Name)
	case sp.CompletionMode == nil || *sp.CompletionMode != batchv1.IndexedCompletion:
		t.Error("not an Indexed Job")
	case sp.Completions == nil || *sp.Completions != 4 || sp.Parallelism == nil || *sp.Parallelism != 4:
		t.Errorf("completions %v, parallelism %v; want 4 and 4", sp.Completions, sp.Parallelism)
	case sp.Template.Spec.RestartPolicy != corev1.RestartPolicyNever:
		t.Errorf("restart policy %q (a Job allows Never or OnFailure)", sp.Template.Spec.RestartPolicy)
	case len(sp.Template.Spec.Containers) != 1:
		t.Fatalf("%d containers", len(sp.Template.Spec.Containers))
	}
	c := sp.Template.Spec.Containers[0]
	if c.Image != "registry.example/meshsim:1" || strings.Join(c.Args, " ") != "task /sweep $(MESHSIM_TASK)" {
		t.Errorf("container %s %q", c.Image, c.Args)
	}
	if len(c.Env) != 1 || c.Env[0].ValueFrom == nil || c.Env[0].ValueFrom.FieldRef == nil ||
		c.Env[0].ValueFrom.FieldRef.FieldPath != "metadata.annotations['batch.kubernetes.io/job-completion-index']" {
		t.Errorf("the task index does not come from the completion index: %+v", c.Env)
	}
	vols := sp.Template.Spec.Volumes
	if len(vols) != 1 || vols[0].PersistentVolumeClaim == nil || vols[0].PersistentVolumeClaim.ClaimName != "sims" ||
		len(c.VolumeMounts) != 1 || c.VolumeMounts[0].Name != vols[0].Name || c.VolumeMounts[0].MountPath != "/sweep" {
		t.Errorf("volume %+v mounted %+v", vols, c.VolumeMounts)
	}
	if _, err := os.Stat(filepath.Join(dir, "tasks", "task-0003.toml")); err != nil {
		t.Error(err)
	}
}

func TestEmitBadFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--emit", "pbs"}, "slurm or k8s"},
		{[]string{"--emit", "k8s", "--name", "Bad_Name"}, "--name"},
		{[]string{"--emit", "slurm", "--parallel", "-1"}, "--parallel"},
	} {
		var stdout, stderr bytes.Buffer
		if err := run(emitArgs(t.TempDir(), c.args...), &stdout, &stderr); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.args, err, c.want)
		}
	}
}

// FuzzReadManifest: any sweep.json is a manifest whose runs stay inside the
// sweep directory, or an error, never a panic.
func FuzzReadManifest(f *testing.F) {
	f.Add([]byte(`{"params":[{"key":"radio.sf","values":["7","8"]}],"seeds":1,"runs":[{"index":0,"values":["7"],"seed":1,"task":"tasks/task-0000.toml","dir":"run-0000"}]}`))
	f.Add([]byte(`{"params":[],"seeds":1,"runs":[{"index":0,"values":[],"seed":1,"task":"../x.toml","dir":"/tmp"}]}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, manifestName), b, 0o644); err != nil {
			t.Fatal(err)
		}
		m, err := readManifest(dir)
		if err != nil {
			return
		}
		for _, r := range m.Runs {
			if !filepath.IsLocal(r.Task) || !filepath.IsLocal(r.Dir) || len(r.Values) != len(m.Params) {
				t.Fatalf("run %+v accepted", r)
			}
		}
	})
}
