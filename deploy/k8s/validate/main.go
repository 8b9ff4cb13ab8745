// Command wpcdc-k8s-validate renders kustomizations and checks every object offline, against
// the real Kubernetes API code, then runs wpcdc's own deployment policy over the result.
//
//	go run . ../base ../overlays/production ../overlays/fleet ../base/secret.example.yaml
//
// Each argument is a kustomization directory (rendered in-process with the kustomize library,
// exactly as `kustomize build` / `kubectl kustomize` would) or a plain YAML file. Every object
// then goes through three stages:
//
//  1. strict decoding into its Go API type (k8s.io/api, prometheus-operator's monitoring/v1):
//     unknown or duplicated fields and wrong types are errors;
//  2. what the API server does on create: defaulting, conversion to the internal type and the
//     API server's own validation code (k8s.io/kubernetes/pkg/apis/.../validation, through the
//     registry strategies where they are light enough), so required fields, enums, names,
//     label selectors matching the template and the like are enforced; ServiceMonitors are
//     validated against the OpenAPI schema of the CRD prometheus-operator publishes
//     (crds/, same release as the Go types);
//  3. wpcdc's policy (policy.go): one replica with Recreate, limits, probes, non-root, no
//     credentials in environment values, arguments or ConfigMaps, selectors that each match
//     one connector, a PodDisruptionBudget that does not block drains, unique connector names.
//
// It prints one line per object, problems indented under it, and exits 1 if there was any
// problem (2 on bad usage). Nothing is downloaded at run time.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/kustomize/kyaml/kio"
	"sigs.k8s.io/kustomize/kyaml/yaml"
)

type kyamlNode = yaml.RNode

// object is one rendered manifest and what the checks found about it.
type object struct {
	raw       []byte // JSON
	gvk       schema.GroupVersionKind
	namespace string // "default" when the manifest has none, as `kubectl apply` would use
	name      string
	typed     runtime.Object // the external (versioned) Go object; nil if it did not decode
	problems  []string
	notes     []string
}

func (o *object) problem(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	for _, p := range o.problems {
		if p == msg {
			return // e.g. an unknown field found by both the Go types and the CRD schema
		}
	}
	o.problems = append(o.problems, msg)
}

func (o *object) note(format string, args ...any) {
	o.notes = append(o.notes, fmt.Sprintf(format, args...))
}

func (o *object) id() string {
	apiVersion, kind := o.gvk.ToAPIVersionAndKind()
	if o.namespace == "" {
		return fmt.Sprintf("%s %s %s", apiVersion, kind, o.name)
	}
	return fmt.Sprintf("%s %s %s/%s", apiVersion, kind, o.namespace, o.name)
}

func main() {
	knownEnv := flag.String("known-env", "",
		"file listing the WPCDC_* variables wpcdc reads, one per line; any other WPCDC_* key is an error")
	printYAML := flag.Bool("print", false, "print the rendered objects as YAML and check nothing")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(),
			"usage: %s [-known-env FILE] [-print] KUSTOMIZATION-DIR|FILE.yaml...\n", os.Args[0])
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	opts := policyOptions{}
	if *knownEnv != "" {
		names, err := readLines(*knownEnv)
		if err != nil {
			fmt.Fprintf(os.Stderr, "wpcdc-k8s-validate: %v\n", err)
			os.Exit(2)
		}
		opts.knownEnv = map[string]bool{}
		for _, n := range names {
			opts.knownEnv[n] = true
		}
	}

	if *printYAML {
		for _, target := range flag.Args() {
			out, err := renderYAML(target)
			if err != nil {
				fmt.Fprintf(os.Stderr, "wpcdc-k8s-validate: %s: %v\n", target, err)
				os.Exit(1)
			}
			fmt.Printf("# %s\n%s", target, out)
		}
		return
	}

	api, err := newAPIChecker()
	if err != nil {
		fmt.Fprintf(os.Stderr, "wpcdc-k8s-validate: %v\n", err)
		os.Exit(2)
	}
	failed := false
	for _, target := range flag.Args() {
		if !checkTarget(os.Stdout, target, api, opts) {
			failed = true
		}
	}
	if failed {
		os.Exit(1)
	}
}

// checkTarget renders and checks one directory or file; false if anything is wrong.
func checkTarget(w io.Writer, target string, api *apiChecker, opts policyOptions) bool {
	raws, err := render(target)
	if err != nil {
		fmt.Fprintf(w, "FAIL  %s: cannot render: %v\n", target, err)
		return false
	}
	if len(raws) == 0 {
		fmt.Fprintf(w, "FAIL  %s: renders no object\n", target)
		return false
	}
	objs := make([]*object, 0, len(raws))
	for _, raw := range raws {
		o := &object{raw: raw}
		api.check(o)
		objs = append(objs, o)
	}
	checkPolicy(objs, opts)

	problems := 0
	for _, o := range objs {
		status := "ok  "
		if len(o.problems) > 0 {
			status = "FAIL"
			problems += len(o.problems)
		}
		fmt.Fprintf(w, "%s  %s: %s\n", status, target, o.id())
		for _, p := range o.problems {
			fmt.Fprintf(w, "        error: %s\n", p)
		}
		for _, n := range o.notes {
			fmt.Fprintf(w, "        note: %s\n", n)
		}
	}
	if problems > 0 {
		fmt.Fprintf(w, "FAIL  %s: %d objects, %d problems\n", target, len(objs), problems)
		return false
	}
	fmt.Fprintf(w, "PASS  %s: %d objects\n", target, len(objs))
	return true
}

// render returns the objects of a kustomization directory or a YAML file, as JSON documents.
func render(target string) ([][]byte, error) {
	nodes, err := renderNodes(target)
	if err != nil {
		return nil, err
	}
	out := make([][]byte, 0, len(nodes))
	for _, n := range nodes {
		js, err := n.MarshalJSON()
		if err != nil {
			return nil, err
		}
		out = append(out, js)
	}
	return out, nil
}

func renderYAML(target string) ([]byte, error) {
	nodes, err := renderNodes(target)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	err = kio.ByteWriter{Writer: &buf}.Write(nodes)
	return buf.Bytes(), err
}

func renderNodes(target string) ([]*kyamlNode, error) {
	info, err := os.Stat(target)
	if err != nil {
		return nil, err
	}
	if info.IsDir() {
		k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
		m, err := k.Run(filesys.MakeFsOnDisk(), filepath.Clean(target))
		if err != nil {
			return nil, err
		}
		return m.ToRNodeSlice(), nil
	}
	data, err := os.ReadFile(target)
	if err != nil {
		return nil, err
	}
	// OmitReaderAnnotations: no config.kubernetes.io/index annotations added to the objects.
	return (&kio.ByteReader{Reader: bytes.NewReader(data), OmitReaderAnnotations: true}).Read()
}

func readLines(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			out = append(out, line)
		}
	}
	sort.Strings(out)
	return out, nil
}
