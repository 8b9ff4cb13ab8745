package main

// Stage 3: wpcdc's deployment policy, over all objects of one render. The API server would
// accept everything this rejects; these are the rules of this project (deploy/k8s/README.md):
//
//   - a connector is a StatefulSet of exactly 1 replica with podManagementPolicy OrderedReady and
//     a headless governing Service in the render (a replacement pod is created only once the old
//     one is gone); a Deployment running wpcdc is refused (a drain or a deleted pod briefly runs
//     two); Jobs running wpcdc (backfill, offsets) never run `stream` and never retry in a loop;
//   - every container has CPU and memory requests, a memory limit, and runs non-root with a
//     read-only root filesystem, no privilege escalation, all capabilities dropped and the
//     RuntimeDefault (or a Localhost) seccomp profile; long-running containers have liveness and
//     readiness probes, and wpcdc's probe the endpoints wpcdc serves on WPCDC_METRICS_PORT;
//   - credentials only as files from a Secret volume (WPCDC_*_FILE): no credential-like
//     variable in env values, envFrom, ConfigMaps or arguments; Secrets written in the
//     repository hold placeholders only;
//   - every WPCDC_* key is an option wpcdc knows (-known-env), WPCDC_NAME is set, valid and
//     unique across the render (it keys the checkpoint and the Kafka transactional id), and so
//     is the MySQL server_id among connectors of one MySQL server;
//   - each Service, ServiceMonitor, PodDisruptionBudget and NetworkPolicy selects exactly the
//     pods (or Service) of one connector, the PodDisruptionBudget never blocks a node drain, and
//     the NetworkPolicy lets the connector reach DNS, its MySQL port and its Kafka ports;
//   - alerting rules (PrometheusRule) never select by job (the Prometheus Operator sets it to the
//     Service's name, which differs per site) and give every alert a severity and a runbook_url.

import (
	"fmt"
	"hash/crc32"
	"net"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

type policyOptions struct {
	knownEnv map[string]bool // nil: not checked
}

var (
	// A name that says it holds a credential. *_FILE names hold a path and are fine.
	credentialName = regexp.MustCompile(`(?i)(PASSWORD|PASSWD|SECRET|TOKEN|CREDENTIAL|PRIVATE_?KEY|API_?KEY)`)
	credentialArg  = regexp.MustCompile(`(?i)^--?([a-z0-9_-]*(password|passwd|secret|token)[a-z0-9_-]*)`)
	// cdc/config.py NAME: what `wpcdc` accepts as --name.
	connectorName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$`)
	placeholder   = regexp.MustCompile(`(?i)change-?me|placeholder`)
)

// connector is one wpcdc container as the render configures it.
type connector struct {
	obj       *object
	namespace string
	podLabels labels.Set
	env       map[string]string // resolved: envFrom ConfigMaps, then env
	name      string
	serverID  uint64
}

type objectIndex struct {
	all []*object
	// Some object did not decode: "selects nothing" may be its fault, so it is only a note.
	incomplete bool
}

// nothingSelected reports a selector that matches nothing in the render.
func (x objectIndex) nothingSelected(o *object, format string, args ...any) {
	if x.incomplete {
		o.note("not checked, an object of the render did not decode: "+format, args...)
		return
	}
	o.problem(format, args...)
}

func (x objectIndex) find(kind, namespace, name string) *object {
	for _, o := range x.all {
		if o.typed != nil && o.gvk.Kind == kind && o.namespace == namespace && o.name == name {
			return o
		}
	}
	return nil
}

func (x objectIndex) ofKind(kind string) []*object {
	var out []*object
	for _, o := range x.all {
		if o.typed != nil && o.gvk.Kind == kind {
			out = append(out, o)
		}
	}
	return out
}

// workloadsSelectedBy lists the long-running workloads (StatefulSets, Deployments) of namespace
// whose pod template sel matches. Jobs are left out: a Job of a connector (backfill, offsets)
// carries the connector's labels on purpose, so that its Service, NetworkPolicy and metrics
// cover it while it runs in the connector's place.
func (x objectIndex) workloadsSelectedBy(namespace string, sel labels.Selector) []*object {
	var out []*object
	for _, o := range x.all {
		if o.typed == nil || o.namespace != namespace {
			continue
		}
		if tmpl := longRunningTemplate(o); tmpl != nil && sel.Matches(labels.Set(tmpl.Labels)) {
			out = append(out, o)
		}
	}
	return out
}

// longRunningTemplate is the pod template of a StatefulSet or Deployment, else nil.
func longRunningTemplate(o *object) *corev1.PodTemplateSpec {
	switch w := o.typed.(type) {
	case *appsv1.StatefulSet:
		return &w.Spec.Template
	case *appsv1.Deployment:
		return &w.Spec.Template
	}
	return nil
}

func replicasOf(o *object) int {
	var r *int32
	switch w := o.typed.(type) {
	case *appsv1.StatefulSet:
		r = w.Spec.Replicas
	case *appsv1.Deployment:
		r = w.Spec.Replicas
	}
	if r == nil {
		return 1
	}
	return int(*r)
}

func names(objs []*object) string {
	var out []string
	for _, o := range objs {
		out = append(out, o.name)
	}
	return strings.Join(out, ", ")
}

func checkPolicy(objs []*object, opts policyOptions) {
	x := objectIndex{all: objs}
	for _, o := range objs {
		x.incomplete = x.incomplete || o.typed == nil
	}
	var connectors []*connector
	for _, o := range x.ofKind("StatefulSet") {
		connectors = append(connectors, checkStatefulSet(o, x, opts)...)
	}
	for _, o := range x.ofKind("Deployment") {
		connectors = append(connectors, checkDeployment(o, x, opts)...)
	}
	for _, o := range x.ofKind("Job") {
		connectors = append(connectors, checkJob(o, x, opts)...)
	}
	for _, o := range x.ofKind("PrometheusRule") {
		checkPrometheusRule(o)
	}
	for _, o := range x.ofKind("ConfigMap") {
		checkConfigMap(o)
	}
	for _, o := range x.ofKind("Secret") {
		checkSecret(o)
	}
	for _, o := range x.ofKind("Service") {
		checkService(o, x)
	}
	for _, o := range x.ofKind("ServiceMonitor") {
		checkServiceMonitor(o, x)
	}
	for _, o := range x.ofKind("PodDisruptionBudget") {
		checkPDB(o, x)
	}
	for _, o := range x.ofKind("NetworkPolicy") {
		checkNetworkPolicy(o, x, connectors)
	}
	checkUnique(connectors)
}

// ------------------------------------------------------------------------------ workloads

func checkStatefulSet(o *object, x objectIndex, opts policyOptions) []*connector {
	s := o.typed.(*appsv1.StatefulSet)
	switch {
	case s.Spec.Replicas == nil:
		o.problem("spec.replicas: not set; set it to 1 explicitly (one binlog reader per connector)")
	case *s.Spec.Replicas != 1:
		o.problem("spec.replicas: %d; must be 1: a binlog has one reader per connector, a second one is fenced", *s.Spec.Replicas)
	}
	if s.Spec.PodManagementPolicy != appsv1.OrderedReadyPodManagement {
		o.problem("spec.podManagementPolicy: %q; must be OrderedReady: the controller then creates a pod only once "+
			"the one it replaces is gone", s.Spec.PodManagementPolicy)
	}
	checkGoverningService(o, s, x)
	return checkPodTemplate(o, &s.Spec.Template, x, opts)
}

// checkGoverningService: spec.serviceName names a headless Service of the render that selects
// this StatefulSet's pods (the stable network identity; also what Prometheus scrapes).
func checkGoverningService(o *object, s *appsv1.StatefulSet, x objectIndex) {
	if s.Spec.ServiceName == "" {
		o.problem("spec.serviceName: not set; name the headless Service of the connector")
		return
	}
	svc := x.find("Service", o.namespace, s.Spec.ServiceName)
	if svc == nil {
		x.nothingSelected(o, "spec.serviceName: Service %q is not part of the render", s.Spec.ServiceName)
		return
	}
	spec := svc.typed.(*corev1.Service).Spec
	if spec.ClusterIP != corev1.ClusterIPNone {
		o.problem("spec.serviceName: Service %q is not headless (clusterIP: None)", s.Spec.ServiceName)
	}
	if len(spec.Selector) == 0 || !labels.SelectorFromSet(spec.Selector).Matches(labels.Set(s.Spec.Template.Labels)) {
		o.problem("spec.serviceName: Service %q does not select this StatefulSet's pods", s.Spec.ServiceName)
	}
}

// checkDeployment: a Deployment may not run wpcdc. Even with the Recreate strategy it starts the
// replacement pod while the old one is still stopping on a node drain or a deleted pod.
func checkDeployment(o *object, x objectIndex, opts policyOptions) []*connector {
	d := o.typed.(*appsv1.Deployment)
	out := checkPodTemplate(o, &d.Spec.Template, x, opts)
	if len(out) > 0 {
		o.problem("kind Deployment runs wpcdc: a node drain or a deleted pod starts the replacement while the old " +
			"pod still runs (two writers); use a StatefulSet of one replica (base/statefulset.yaml)")
	}
	return out
}

// checkJob: a one-off wpcdc command (backfill, offsets) run in the connector's place, with the
// connector's ConfigMap and Secret (which its render may leave to the connector's overlay).
func checkJob(o *object, x objectIndex, opts policyOptions) []*connector {
	j := o.typed.(*batchv1.Job)
	const at = "spec.template.spec"
	pod := &j.Spec.Template.Spec
	if pod.RestartPolicy != corev1.RestartPolicyNever {
		o.problem("%s.restartPolicy: %q; must be Never: a failed wpcdc command is read and rerun by a person, "+
			"not restarted in place", at, pod.RestartPolicy)
	}
	if j.Spec.BackoffLimit == nil || *j.Spec.BackoffLimit != 0 {
		o.problem("spec.backoffLimit: must be 0: an exit code is an answer (docs/operations.md, Exit codes), " +
			"not a reason to run the command again")
	}
	if j.Spec.Parallelism != nil && *j.Spec.Parallelism > 1 || j.Spec.Completions != nil && *j.Spec.Completions > 1 {
		o.problem("spec.parallelism, spec.completions: at most 1: one process per connector name")
	}
	checkPodSpec(o, pod, x)
	o.note("runs in the connector's place: scale its StatefulSet to 0 and wait until its pod is gone first " +
		"(docs/operations.md, \"Running a Job in the connector's place\")")
	for i := range pod.InitContainers {
		checkContainer(o, &pod.InitContainers[i], fmt.Sprintf("%s.initContainers[%d]", at, i), pod, roleInit, x, opts)
	}
	var out []*connector
	for i := range pod.Containers {
		c := &pod.Containers[i]
		if conn := checkContainer(o, c, fmt.Sprintf("%s.containers[%d]", at, i), pod, roleJob, x, opts); conn != nil {
			conn.podLabels = labels.Set(j.Spec.Template.Labels)
			out = append(out, conn)
		}
		if args := append(append([]string{}, c.Command...), c.Args...); len(args) > 0 && imageRepo(c.Image) == "wpcdc" {
			if args[0] == "wpcdc" {
				args = args[1:]
			}
			if len(args) == 0 || args[0] == "stream" {
				o.problem("%s.containers[%d].args: a Job runs a one-off command (backfill, offsets, check, status), "+
					"never `stream`", at, i)
			}
		}
	}
	return out
}

func checkPodTemplate(o *object, tmpl *corev1.PodTemplateSpec, x objectIndex, opts policyOptions) []*connector {
	pod := &tmpl.Spec
	const at = "spec.template.spec"
	checkPodSpec(o, pod, x)
	var out []*connector
	for i := range pod.InitContainers {
		checkContainer(o, &pod.InitContainers[i], fmt.Sprintf("%s.initContainers[%d]", at, i), pod, roleInit, x, opts)
	}
	for i := range pod.Containers {
		if c := checkContainer(o, &pod.Containers[i], fmt.Sprintf("%s.containers[%d]", at, i), pod, roleMain, x, opts); c != nil {
			c.podLabels = labels.Set(tmpl.Labels)
			out = append(out, c)
		}
	}
	return out
}

func checkPodSpec(o *object, pod *corev1.PodSpec, x objectIndex) {
	const at = "spec.template.spec"
	sa := x.find("ServiceAccount", o.namespace, pod.ServiceAccountName)
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		if pod.AutomountServiceAccountToken != nil || sa == nil ||
			sa.typed.(*corev1.ServiceAccount).AutomountServiceAccountToken == nil ||
			*sa.typed.(*corev1.ServiceAccount).AutomountServiceAccountToken {
			o.problem("%s.automountServiceAccountToken: must be false (wpcdc does not use the Kubernetes API)", at)
		}
	}
	switch {
	case pod.ServiceAccountName == "" || pod.ServiceAccountName == "default":
		o.problem("%s.serviceAccountName: use a dedicated ServiceAccount, not the namespace's default", at)
	case sa == nil && o.gvk.Kind == "Job":
		o.note("%s.serviceAccountName: ServiceAccount %q comes with the connector's overlay", at, pod.ServiceAccountName)
	case sa == nil:
		o.problem("%s.serviceAccountName: ServiceAccount %q is not part of the render", at, pod.ServiceAccountName)
	}
	if pod.EnableServiceLinks == nil || *pod.EnableServiceLinks {
		o.problem("%s.enableServiceLinks: must be false; service links add WPCDC_*-prefixed variables "+
			"(WPCDC_SERVICE_HOST, WPCDC_PORT...) for Services named wpcdc*, the prefix wpcdc reads options from", at)
	}
}

// containerRole: what a container is for, which decides the checks that apply.
type containerRole int

const (
	roleMain containerRole = iota // the long-running connector
	roleInit                      // an init container
	roleJob                       // a one-off command of a Job
)

// checkContainer checks one container; it returns the connector if the container runs wpcdc.
func checkContainer(o *object, c *corev1.Container, at string, pod *corev1.PodSpec, role containerRole,
	x objectIndex, opts policyOptions) *connector {
	psc := pod.SecurityContext
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	sc := c.SecurityContext
	if sc == nil {
		sc = &corev1.SecurityContext{}
	}

	// --- security context
	runAsNonRoot := sc.RunAsNonRoot
	if runAsNonRoot == nil {
		runAsNonRoot = psc.RunAsNonRoot
	}
	if runAsNonRoot == nil || !*runAsNonRoot {
		o.problem("%s: runAsNonRoot must be true (container or pod securityContext)", at)
	}
	runAsUser := sc.RunAsUser
	if runAsUser == nil {
		runAsUser = psc.RunAsUser
	}
	if runAsUser != nil && *runAsUser == 0 {
		o.problem("%s: runAsUser 0 is root", at)
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		o.problem("%s.securityContext.readOnlyRootFilesystem: must be true", at)
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		o.problem("%s.securityContext.allowPrivilegeEscalation: must be false", at)
	}
	if sc.Privileged != nil && *sc.Privileged {
		o.problem("%s.securityContext.privileged: must not be true", at)
	}
	dropsAll := false
	if sc.Capabilities != nil {
		for _, cap := range sc.Capabilities.Drop {
			dropsAll = dropsAll || strings.EqualFold(string(cap), "ALL")
		}
		if len(sc.Capabilities.Add) > 0 {
			o.problem("%s.securityContext.capabilities.add: wpcdc needs no capability", at)
		}
	}
	if !dropsAll {
		o.problem("%s.securityContext.capabilities.drop: must include ALL", at)
	}
	seccomp := sc.SeccompProfile
	if seccomp == nil {
		seccomp = psc.SeccompProfile
	}
	if seccomp == nil || (seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault && seccomp.Type != corev1.SeccompProfileTypeLocalhost) {
		o.problem("%s: seccompProfile must be RuntimeDefault or Localhost (container or pod securityContext)", at)
	}

	// --- resources and probes
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if _, ok := c.Resources.Requests[r]; !ok {
			o.problem("%s.resources.requests.%s: not set", at, r)
		}
	}
	if _, ok := c.Resources.Limits[corev1.ResourceMemory]; !ok {
		o.problem("%s.resources.limits.memory: not set", at)
	}
	if role == roleMain {
		if c.LivenessProbe == nil {
			o.problem("%s.livenessProbe: not set", at)
		}
		if c.ReadinessProbe == nil {
			o.problem("%s.readinessProbe: not set", at)
		}
	}

	// --- image
	if tag, ok := imageTag(c.Image); !ok {
		o.problem("%s.image: %q has no tag or digest; pin a release", at, c.Image)
	} else if tag == "latest" {
		o.problem("%s.image: %q: pin a release, not latest", at, c.Image)
	}

	// --- environment, arguments: no credentials
	env := map[string]string{}
	origin := map[string]string{}
	for i, ef := range c.EnvFrom {
		where := fmt.Sprintf("%s.envFrom[%d]", at, i)
		if ef.SecretRef != nil {
			o.problem("%s.secretRef: a Secret as environment variables; mount it as files and use WPCDC_*_FILE", where)
		}
		if ef.ConfigMapRef != nil {
			cm := x.find("ConfigMap", o.namespace, ef.ConfigMapRef.Name)
			if cm == nil && role == roleJob {
				o.note("%s.configMapRef: ConfigMap %q comes with the connector's overlay (not in this render)",
					where, ef.ConfigMapRef.Name)
				continue
			}
			if cm == nil {
				if ef.ConfigMapRef.Optional == nil || !*ef.ConfigMapRef.Optional {
					o.problem("%s.configMapRef: ConfigMap %q is not part of the render", where, ef.ConfigMapRef.Name)
				}
				continue
			}
			for k, v := range cm.typed.(*corev1.ConfigMap).Data {
				env[ef.Prefix+k] = v
				origin[ef.Prefix+k] = "ConfigMap " + ef.ConfigMapRef.Name
			}
		}
	}
	for i, e := range c.Env {
		where := fmt.Sprintf("%s.env[%d] (%s)", at, i, e.Name)
		origin[e.Name] = where
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = e.Value
		case e.ValueFrom.SecretKeyRef != nil:
			o.problem("%s: secretKeyRef; mount the Secret as files and use a *_FILE variable instead", where)
			env[e.Name] = ""
		case e.ValueFrom.ConfigMapKeyRef != nil:
			ref := e.ValueFrom.ConfigMapKeyRef
			if cm := x.find("ConfigMap", o.namespace, ref.Name); cm != nil {
				env[e.Name] = cm.typed.(*corev1.ConfigMap).Data[ref.Key]
			} else if ref.Optional == nil || !*ref.Optional {
				o.problem("%s: ConfigMap %q is not part of the render", where, ref.Name)
			}
		default:
			env[e.Name] = ""
		}
	}
	for _, k := range sortedKeys(env) {
		if credentialName.MatchString(k) && !strings.HasSuffix(k, "_FILE") {
			o.problem("%s: environment variable %s (from %s) holds a credential; mount the Secret as a file and set %s_FILE",
				at, k, origin[k], k)
		}
	}
	for i, a := range append(append([]string{}, c.Command...), c.Args...) {
		if m := credentialArg.FindStringSubmatch(a); m != nil && !strings.HasSuffix(strings.ToLower(m[1]), "-file") {
			o.problem("%s: argument %d (%s) passes a credential on the command line; use a *_FILE option", at, i, m[0])
		}
	}

	// --- wpcdc itself
	isWpcdc := imageRepo(c.Image) == "wpcdc"
	for k := range env {
		isWpcdc = isWpcdc || strings.HasPrefix(k, "WPCDC_")
	}
	if !isWpcdc || role == roleInit {
		return nil
	}
	return checkConnector(o, c, at, pod, role, env, origin, x, opts)
}

func checkConnector(o *object, c *corev1.Container, at string, pod *corev1.PodSpec, role containerRole,
	env, origin map[string]string, x objectIndex, opts policyOptions) *connector {
	if opts.knownEnv != nil {
		for _, k := range sortedKeys(env) {
			if strings.HasPrefix(k, "WPCDC_") && !opts.knownEnv[k] {
				o.problem("%s: %s (from %s) is not a wpcdc option (see `wpcdc stream --help`); wpcdc would ignore it",
					at, k, origin[k])
			}
		}
	}
	conn := &connector{obj: o, namespace: o.namespace, env: env}
	conn.name = env["WPCDC_NAME"]
	if conn.name == "" && role == roleJob && len(c.EnvFrom) > 0 && x.find("ConfigMap", o.namespace, c.EnvFrom[0].ConfigMapRef.Name) == nil {
		return nil // its settings come with the connector's overlay: nothing more to check here
	}
	switch {
	case conn.name == "":
		o.problem("%s: WPCDC_NAME is not set; name every connector explicitly, the name keys its checkpoint", at)
	case !connectorName.MatchString(conn.name):
		o.problem("%s: WPCDC_NAME %q: wpcdc accepts 1-100 letters, digits, '.', '_' or '-'", at, conn.name)
	}
	if id, ok := env["WPCDC_SERVER_ID"]; ok {
		n, err := strconv.ParseUint(id, 10, 32)
		if err != nil || n == 0 {
			o.problem("%s: WPCDC_SERVER_ID %q: must be 1..4294967295", at, id)
		}
		conn.serverID = n
	} else {
		// cdc/config.py default_server_id: 1_000_000 + zlib.crc32(name) % 1_000_000_000.
		conn.serverID = 1_000_000 + uint64(crc32.ChecksumIEEE([]byte(conn.name)))%1_000_000_000
	}

	// Credential files: under a mount of a Secret (or projected/CSI) volume, with the key present.
	secretKeys := map[string][]string{} // Secret not in the render → keys the pod needs from it
	for _, k := range sortedKeys(env) {
		if !strings.HasPrefix(k, "WPCDC_") || !strings.HasSuffix(k, "_FILE") || env[k] == "" {
			continue
		}
		file := env[k]
		mount, vol := mountOf(c, pod, file)
		if mount == nil || vol == nil {
			o.problem("%s: %s=%s is not under any volumeMount of the container", at, k, file)
			continue
		}
		rel := strings.TrimPrefix(path.Clean(file), path.Clean(mount.MountPath)+"/")
		switch {
		case vol.Secret != nil:
			key := rel
			if len(vol.Secret.Items) > 0 {
				key = ""
				for _, it := range vol.Secret.Items {
					if path.Clean(it.Path) == rel {
						key = it.Key
					}
				}
				if key == "" {
					o.problem("%s: %s=%s: volume %q maps no Secret key to %q", at, k, file, vol.Name, rel)
					continue
				}
			}
			if s := x.find("Secret", o.namespace, vol.Secret.SecretName); s != nil {
				sec := s.typed.(*corev1.Secret)
				_, inData := sec.Data[key]
				_, inString := sec.StringData[key]
				if !inData && !inString {
					o.problem("%s: %s=%s: Secret %q has no key %q", at, k, file, vol.Secret.SecretName, key)
				}
			} else {
				secretKeys[vol.Secret.SecretName] = append(secretKeys[vol.Secret.SecretName], key)
			}
		case vol.Projected != nil || vol.CSI != nil:
			// Secrets Store CSI driver or projected Secrets: trust the mount.
		default:
			if credentialName.MatchString(k) {
				o.problem("%s: %s=%s reads a credential from volume %q, which is not a Secret", at, k, file, vol.Name)
			}
		}
	}
	for _, name := range sortedKeys(secretKeys) {
		o.note("needs Secret %s/%s with key(s) %s: not rendered on purpose; create it out of band (base/secret.example.yaml)",
			o.namespace, name, strings.Join(secretKeys[name], ", "))
	}

	// Metrics port: the probes and the Service reach wpcdc's HTTP server there. A Job's command
	// serves it only if it declares the port (backfill does; offsets does not).
	if role == roleJob && len(c.Ports) == 0 {
		return conn
	}
	portText, ok := env["WPCDC_METRICS_PORT"]
	if !ok {
		o.problem("%s: WPCDC_METRICS_PORT is not set: no /healthz, /readyz or /metrics for the probes and Prometheus", at)
		return conn
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		o.problem("%s: WPCDC_METRICS_PORT %q is not a port number", at, portText)
		return conn
	}
	declared := false
	for _, p := range c.Ports {
		declared = declared || int(p.ContainerPort) == port
	}
	if !declared {
		o.problem("%s.ports: no containerPort %d (WPCDC_METRICS_PORT)", at, port)
	}
	probes := []struct {
		name, path string
		probe      *corev1.Probe
	}{
		{"startupProbe", "/healthz", c.StartupProbe},
		{"livenessProbe", "/healthz", c.LivenessProbe},
		{"readinessProbe", "/readyz", c.ReadinessProbe},
	}
	for _, p := range probes {
		if p.probe == nil {
			continue
		}
		get := p.probe.HTTPGet
		if get == nil {
			o.problem("%s.%s: use httpGet %s on the metrics port", at, p.name, p.path)
			continue
		}
		if get.Path != p.path {
			o.problem("%s.%s.httpGet.path: %q; wpcdc serves %s for this", at, p.name, get.Path, p.path)
		}
		if got, ok := containerPort(c, get.Port); !ok || got != port {
			o.problem("%s.%s.httpGet.port: %s is not WPCDC_METRICS_PORT %d", at, p.name, get.Port.String(), port)
		}
	}
	return conn
}

func mountOf(c *corev1.Container, pod *corev1.PodSpec, file string) (*corev1.VolumeMount, *corev1.Volume) {
	file = path.Clean(file)
	for i := range c.VolumeMounts {
		m := &c.VolumeMounts[i]
		if m.SubPath != "" || !strings.HasPrefix(file, path.Clean(m.MountPath)+"/") {
			continue
		}
		for j := range pod.Volumes {
			if pod.Volumes[j].Name == m.Name {
				return m, &pod.Volumes[j]
			}
		}
		return m, nil
	}
	return nil, nil
}

func containerPort(c *corev1.Container, p intstr.IntOrString) (int, bool) {
	if p.Type == intstr.Int {
		return p.IntValue(), true
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return int(cp.ContainerPort), true
		}
	}
	return 0, false
}

// imageRepo is the last path element of an image reference, without tag or digest.
func imageRepo(image string) string {
	image, _, _ = strings.Cut(image, "@")
	last := path.Base(image)
	repo, _, _ := strings.Cut(last, ":")
	return repo
}

// imageTag returns the tag ("" for a digest) and whether the image is pinned at all.
func imageTag(image string) (string, bool) {
	if strings.Contains(image, "@") {
		return "", true
	}
	last := path.Base(image)
	if _, tag, ok := strings.Cut(last, ":"); ok && tag != "" {
		return tag, true
	}
	return "", false
}

// ------------------------------------------------------------------- ConfigMap and Secret

func checkConfigMap(o *object) {
	cm := o.typed.(*corev1.ConfigMap)
	keys := sortedKeys(cm.Data)
	for k := range cm.BinaryData {
		keys = append(keys, k)
	}
	for _, k := range keys {
		if credentialName.MatchString(k) && !strings.HasSuffix(k, "_FILE") {
			o.problem("data.%s: a credential in a ConfigMap, which is not secret; put it in a Secret volume and set %s_FILE", k, k)
		}
	}
}

// checkSecret: a Secret that is part of the manifests is in the repository, so it may only
// carry placeholders; the real one is created out of band.
func checkSecret(o *object) {
	s := o.typed.(*corev1.Secret)
	for k, v := range s.StringData {
		if !placeholder.MatchString(v) {
			o.problem("stringData.%s: not a placeholder (CHANGE-ME...); real credentials never go in the repository", k)
		}
	}
	for k, v := range s.Data {
		if !placeholder.Match(v) {
			o.problem("data.%s: not a placeholder (CHANGE-ME...); real credentials never go in the repository", k)
		}
	}
}

// ------------------------------------------------------------------------------- selectors

func checkService(o *object, x objectIndex) {
	svc := o.typed.(*corev1.Service)
	if len(svc.Spec.Selector) == 0 {
		o.problem("spec.selector: empty; select the connector's pods")
		return
	}
	sel := labels.SelectorFromSet(svc.Spec.Selector)
	matched := x.workloadsSelectedBy(o.namespace, sel)
	switch len(matched) {
	case 0:
		x.nothingSelected(o, "spec.selector %s matches the pods of no StatefulSet in the render", sel)
		return
	case 1:
	default:
		o.problem("spec.selector %s matches the pods of %d workloads (%s); each connector needs its own Service",
			sel, len(matched), names(matched))
		return
	}
	w := matched[0]
	tmpl := longRunningTemplate(w)
	for i, p := range svc.Spec.Ports {
		target := p.TargetPort
		if target.Type == intstr.Int && target.IntVal == 0 {
			target = intstr.FromInt32(p.Port)
		}
		found := false
		for j := range tmpl.Spec.Containers {
			if _, ok := containerPort(&tmpl.Spec.Containers[j], target); ok {
				found = true
			}
		}
		if !found {
			o.problem("spec.ports[%d].targetPort: %s is no container port of %s %s", i, target.String(), w.gvk.Kind, w.name)
		}
	}
}

func checkServiceMonitor(o *object, x objectIndex) {
	sm := o.typed.(*monitoringv1.ServiceMonitor)
	if sm.Spec.NamespaceSelector.Any || len(sm.Spec.NamespaceSelector.MatchNames) > 0 {
		o.note("spec.namespaceSelector reaches other namespaces: selector not checked against the render")
		return
	}
	sel, err := metav1.LabelSelectorAsSelector(&sm.Spec.Selector)
	if err != nil {
		o.problem("spec.selector: %v", err)
		return
	}
	if sel.Empty() {
		o.problem("spec.selector: empty; it would scrape every Service of the namespace")
		return
	}
	var matched []*object
	for _, s := range x.ofKind("Service") {
		if s.namespace == o.namespace && sel.Matches(labels.Set(s.typed.(*corev1.Service).Labels)) {
			matched = append(matched, s)
		}
	}
	switch len(matched) {
	case 0:
		x.nothingSelected(o, "spec.selector %s matches no Service in the render", sel)
		return
	case 1:
	default:
		o.problem("spec.selector %s matches %d Services (%s); each connector's ServiceMonitor must select its own",
			sel, len(matched), names(matched))
		return
	}
	svc := matched[0].typed.(*corev1.Service)
	// The alerting rules (../monitoring) select connectors by this label, copied onto every series.
	hasName := false
	for _, l := range sm.Spec.TargetLabels {
		hasName = hasName || l == "app.kubernetes.io/name"
	}
	if !hasName {
		o.problem("spec.targetLabels: must include app.kubernetes.io/name: the alerting rules select connectors " +
			"by app_kubernetes_io_name, not by job (the Service's name)")
	}
	for i, ep := range sm.Spec.Endpoints {
		if ep.Port == "" {
			continue
		}
		found := false
		for _, p := range svc.Spec.Ports {
			found = found || p.Name == ep.Port
		}
		if !found {
			o.problem("spec.endpoints[%d].port: Service %s has no port named %q", i, svc.Name, ep.Port)
		}
	}
}

func checkPDB(o *object, x objectIndex) {
	pdb := o.typed.(*policyv1.PodDisruptionBudget)
	sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
	if err != nil || pdb.Spec.Selector == nil || sel.Empty() {
		o.problem("spec.selector: select the connector's pods")
		return
	}
	matched := x.workloadsSelectedBy(o.namespace, sel)
	if len(matched) == 0 {
		x.nothingSelected(o, "spec.selector %s matches the pods of no StatefulSet in the render", sel)
		return
	}
	if len(matched) > 1 {
		o.problem("spec.selector %s matches the pods of %d workloads (%s); one PodDisruptionBudget per connector",
			sel, len(matched), names(matched))
	}
	replicas := 0
	for _, m := range matched {
		replicas += replicasOf(m)
	}
	// Rounded up, as the disruption controller does.
	if v := pdb.Spec.MinAvailable; v != nil {
		if n, err := intstr.GetScaledValueFromIntOrPercent(v, replicas, true); err == nil && n >= replicas {
			o.problem("spec.minAvailable %s with %d replica(s) never allows an eviction, so node drains block forever; "+
				"use maxUnavailable: 1", v.String(), replicas)
		}
	}
	if v := pdb.Spec.MaxUnavailable; v != nil {
		if n, err := intstr.GetScaledValueFromIntOrPercent(v, replicas, true); err == nil && n < 1 {
			o.problem("spec.maxUnavailable %s never allows an eviction, so node drains block forever; use 1", v.String())
		}
	}
}

func checkNetworkPolicy(o *object, x objectIndex, connectors []*connector) {
	np := o.typed.(*networkingv1.NetworkPolicy)
	sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
	if err != nil {
		o.problem("spec.podSelector: %v", err)
		return
	}
	if sel.Empty() {
		o.problem("spec.podSelector: empty; this policy would apply to every pod of the namespace")
		return
	}
	if len(x.workloadsSelectedBy(o.namespace, sel)) == 0 {
		x.nothingSelected(o, "spec.podSelector %s matches the pods of no StatefulSet in the render", sel)
		return
	}
	egress := false
	for _, t := range np.Spec.PolicyTypes {
		egress = egress || t == networkingv1.PolicyTypeEgress
	}
	if !egress && len(np.Spec.Egress) > 0 {
		egress = true
	}
	if !egress {
		return
	}
	for _, c := range connectors {
		if c.namespace != o.namespace || !sel.Matches(c.podLabels) {
			continue
		}
		need := []egressNeed{{"DNS", 53, corev1.ProtocolUDP}}
		mysqlPort := 3306
		if p, err := strconv.Atoi(c.env["WPCDC_MYSQL_PORT"]); err == nil {
			mysqlPort = p
		}
		need = append(need, egressNeed{"MySQL (WPCDC_MYSQL_PORT)", mysqlPort, corev1.ProtocolTCP})
		bootstrap := c.env["WPCDC_KAFKA_BOOTSTRAP"]
		if bootstrap == "" {
			bootstrap = "127.0.0.1:9092" // wpcdc's default
		}
		for _, hp := range strings.Split(bootstrap, ",") {
			if _, p, err := net.SplitHostPort(strings.TrimSpace(hp)); err == nil {
				if n, err := strconv.Atoi(p); err == nil {
					need = append(need, egressNeed{"Kafka (WPCDC_KAFKA_BOOTSTRAP)", n, corev1.ProtocolTCP})
				}
			}
		}
		for _, n := range need {
			if !egressAllows(np, n.port, n.proto) {
				o.problem("spec.egress: connector %q cannot reach %s on %s port %d", c.name, n.what, n.proto, n.port)
			}
		}
	}
}

type egressNeed struct {
	what  string
	port  int
	proto corev1.Protocol
}

func egressAllows(np *networkingv1.NetworkPolicy, port int, proto corev1.Protocol) bool {
	for _, rule := range np.Spec.Egress {
		if len(rule.Ports) == 0 {
			return true
		}
		for _, p := range rule.Ports {
			ruleProto := corev1.ProtocolTCP
			if p.Protocol != nil {
				ruleProto = *p.Protocol
			}
			if ruleProto != proto {
				continue
			}
			if p.Port == nil {
				return true
			}
			if p.Port.Type == intstr.Int {
				lo, hi := int(p.Port.IntVal), int(p.Port.IntVal)
				if p.EndPort != nil {
					hi = int(*p.EndPort)
				}
				if lo <= port && port <= hi {
					return true
				}
			}
		}
	}
	return false
}

// ------------------------------------------------------------------------------ uniqueness

// checkUnique: connector names are unique across the whole render, whatever the namespace
// (they share the checkpoint topic of a Kafka cluster); server_ids among connectors of one MySQL
// server (a server drops a replica connection when another connects with the same id).
func checkUnique(connectors []*connector) {
	byName := map[string][]*connector{}
	byServer := map[string][]*connector{}
	for _, c := range connectors {
		if c.name == "" {
			continue
		}
		byName[c.name] = append(byName[c.name], c)
		host := c.env["WPCDC_MYSQL_HOST"] + ":" + c.env["WPCDC_MYSQL_PORT"]
		key := fmt.Sprintf("%s#%d", host, c.serverID)
		byServer[key] = append(byServer[key], c)
	}
	for _, name := range sortedKeys(byName) {
		if cs := byName[name]; len(cs) > 1 {
			for _, c := range cs {
				c.obj.problem("connector name %q (WPCDC_NAME) is used by %d workloads (%s): the name keys the "+
					"checkpoint and the Kafka transactional id wpcdc-%s, so it must be unique per site (a Job of a connector runs "+
					"in its place: it is rendered and applied on its own, overlays/jobs)", name, len(cs), connectorObjs(cs), name)
			}
		}
	}
	for _, key := range sortedKeys(byServer) {
		if cs := byServer[key]; len(cs) > 1 {
			for _, c := range cs {
				c.obj.problem("MySQL server_id %d is used by %d connectors of one MySQL server (%s); set WPCDC_SERVER_ID",
					c.serverID, len(cs), connectorObjs(cs))
			}
		}
	}
}

func connectorObjs(cs []*connector) string {
	var out []string
	for _, c := range cs {
		out = append(out, c.obj.gvk.Kind+" "+c.namespace+"/"+c.obj.name)
	}
	return strings.Join(out, ", ")
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// ------------------------------------------------------------------------- alerting rules

// A matcher on job: with the Prometheus Operator, job is the Service's name (wpcdc-site-a, ...).
var jobMatcher = regexp.MustCompile(`\bjob\s*(=|!=|=~|!~)\s*"`)

var severities = map[string]bool{"critical": true, "warning": true}

// checkPrometheusRule: the rules must hold for every connector of a fleet, and every alert must
// say how urgent it is and where its runbook is. PromQL itself is checked by promtool
// (tests/unit/test_alerts.py), on the same rules as ../monitoring/wpcdc.rules.yaml.
func checkPrometheusRule(o *object) {
	r := o.typed.(*monitoringv1.PrometheusRule)
	for gi, g := range r.Spec.Groups {
		for ri, rule := range g.Rules {
			at := fmt.Sprintf("spec.groups[%d].rules[%d]", gi, ri)
			if rule.Alert != "" {
				at = fmt.Sprintf("%s (%s)", at, rule.Alert)
			}
			if jobMatcher.MatchString(rule.Expr.String()) {
				o.problem("%s.expr: selects by job, which the Prometheus Operator sets to each Service's name; "+
					"select by app_kubernetes_io_name (the ServiceMonitor's targetLabels)", at)
			}
			if rule.Alert == "" {
				continue
			}
			if !severities[rule.Labels["severity"]] {
				o.problem("%s.labels.severity: %q; must be critical (pages) or warning", at, rule.Labels["severity"])
			}
			if rule.Annotations["runbook_url"] == "" {
				o.problem("%s.annotations.runbook_url: not set; every alert links its runbook", at)
			}
			if rule.Annotations["summary"] == "" {
				o.problem("%s.annotations.summary: not set", at)
			}
		}
	}
}
