package main

// Stages 1 and 2: strict decoding into the Go API types, then the API server's own create-time
// defaulting and validation. Kinds with no validation wired here are errors, not passes.

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	structuraldefaulting "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	apiservervalidation "k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metavalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/json"
	"k8s.io/apimachinery/pkg/util/validation/field"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/registry/rest"
	"k8s.io/apiserver/pkg/warning"
	"k8s.io/kubernetes/pkg/api/legacyscheme"
	podutil "k8s.io/kubernetes/pkg/api/pod"
	"k8s.io/kubernetes/pkg/apis/batch"
	batchvalidation "k8s.io/kubernetes/pkg/apis/batch/validation"
	"k8s.io/kubernetes/pkg/apis/core"
	corevalidation "k8s.io/kubernetes/pkg/apis/core/validation"
	"k8s.io/kubernetes/pkg/registry/apps/deployment"
	"k8s.io/kubernetes/pkg/registry/apps/statefulset"
	"k8s.io/kubernetes/pkg/registry/networking/networkpolicy"
	"k8s.io/kubernetes/pkg/registry/policy/poddisruptionbudget"
	sigsyaml "sigs.k8s.io/yaml"

	// Register the internal and versioned types, defaulting and conversion of these groups in
	// legacyscheme.Scheme, as kube-apiserver does.
	_ "k8s.io/kubernetes/pkg/apis/apps/install"
	_ "k8s.io/kubernetes/pkg/apis/batch/install"
	_ "k8s.io/kubernetes/pkg/apis/core/install"
	_ "k8s.io/kubernetes/pkg/apis/networking/install"
	_ "k8s.io/kubernetes/pkg/apis/policy/install"
)

// The ServiceMonitor CRD exactly as prometheus-operator publishes it
// (example/prometheus-operator-crd/ in github.com/prometheus-operator/prometheus-operator), from
// the release whose Go types go.mod pins; newAPIChecker refuses a mismatch.
//
//go:embed crds/monitoring.coreos.com_servicemonitors.yaml
var serviceMonitorCRD []byte

const monitoringModule = "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring"

type apiChecker struct {
	scheme  *runtime.Scheme
	decoder runtime.Decoder
	builtin map[schema.GroupKind]builtinKind
	crds    map[schema.GroupVersionKind]*crdVersion
}

// builtinKind is how kube-apiserver validates a create of one built-in kind: through its
// registry strategy (rest.BeforeCreate: PrepareForCreate, Validate, declarative validation,
// warnings), or, where the strategy's package drags in half of the API server (Service,
// ConfigMap, Secret, ServiceAccount, Job), through the same validation function the strategy calls.
//
// typedOnly: a custom resource whose CRD is not embedded (PrometheusRule: the module go.mod pins
// ships the Go types, not the CRD of that release, and a CRD of another release would not be
// the schema the cluster checks). It gets stage 1 (strict decoding into the Go types: unknown
// fields, wrong types) and the object metadata rules; its PromQL is checked by promtool
// (tests/unit/test_alerts.py).
type builtinKind struct {
	resource  string
	strategy  rest.RESTCreateStrategy
	validate  func(obj runtime.Object) field.ErrorList
	typedOnly bool
}

type crdVersion struct {
	namespaced bool
	validator  apiservervalidation.SchemaValidator
	structural *structuralschema.Structural
}

func newAPIChecker() (*apiChecker, error) {
	scheme := legacyscheme.Scheme
	if err := monitoringv1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	c := &apiChecker{
		scheme: scheme,
		// Strict: unknown and duplicate fields are reported (the typed object is still returned).
		decoder: serializer.NewCodecFactory(scheme, serializer.EnableStrict).UniversalDeserializer(),
		builtin: map[schema.GroupKind]builtinKind{
			{Group: "apps", Kind: "Deployment"}:                      {resource: "deployments", strategy: deployment.Strategy},
			{Group: "apps", Kind: "StatefulSet"}:                     {resource: "statefulsets", strategy: statefulset.Strategy},
			{Group: "batch", Kind: "Job"}:                            {resource: "jobs", validate: validateJob},
			{Group: "monitoring.coreos.com", Kind: "PrometheusRule"}: {resource: "prometheusrules", typedOnly: true},
			{Group: "policy", Kind: "PodDisruptionBudget"}:           {resource: "poddisruptionbudgets", strategy: poddisruptionbudget.Strategy},
			{Group: "networking.k8s.io", Kind: "NetworkPolicy"}:      {resource: "networkpolicies", strategy: networkpolicy.Strategy},
			{Group: "", Kind: "Service"}:                             {resource: "services", validate: validateService},
			{Group: "", Kind: "ConfigMap"}:                           {resource: "configmaps", validate: func(o runtime.Object) field.ErrorList { return corevalidation.ValidateConfigMap(o.(*core.ConfigMap)) }},
			{Group: "", Kind: "Secret"}:                              {resource: "secrets", validate: func(o runtime.Object) field.ErrorList { return corevalidation.ValidateSecret(o.(*core.Secret)) }},
			{Group: "", Kind: "ServiceAccount"}: {resource: "serviceaccounts", validate: func(o runtime.Object) field.ErrorList {
				return corevalidation.ValidateServiceAccount(o.(*core.ServiceAccount))
			}},
		},
		crds: map[schema.GroupVersionKind]*crdVersion{},
	}
	if err := c.addCRD(serviceMonitorCRD, monitoringModule); err != nil {
		return nil, fmt.Errorf("embedded ServiceMonitor CRD: %w", err)
	}
	return c, nil
}

// validateService mirrors the Service registry strategy's PrepareForCreate and Validate.
func validateService(obj runtime.Object) field.ErrorList {
	svc := obj.(*core.Service)
	svc.Status = core.ServiceStatus{}
	// The Service storage's normalizeClusterIPs on create: a clusterIP given alone (headless:
	// None) becomes the only entry of clusterIPs before validation.
	if svc.Spec.ClusterIP != "" && len(svc.Spec.ClusterIPs) == 0 {
		svc.Spec.ClusterIPs = []string{svc.Spec.ClusterIP}
	}
	return corevalidation.ValidateServiceCreate(svc)
}

// validateJob mirrors the Job registry strategy's PrepareForCreate (the generated selector and
// its pod labels, from the UID the API server assigns) and Validate; the strategy's own package
// would bring in the API server's storage layer.
func validateJob(obj runtime.Object) field.ErrorList {
	j := obj.(*batch.Job)
	j.Status = batch.JobStatus{}
	if j.UID == "" {
		j.UID = types.UID("00000000-0000-0000-0000-000000000000")
	}
	if j.Spec.ManualSelector == nil || !*j.Spec.ManualSelector {
		if j.Spec.Template.Labels == nil {
			j.Spec.Template.Labels = map[string]string{}
		}
		for _, k := range []string{batch.LegacyJobNameLabel, batch.JobNameLabel} {
			if _, ok := j.Spec.Template.Labels[k]; !ok {
				j.Spec.Template.Labels[k] = j.Name
			}
		}
		for _, k := range []string{batch.LegacyControllerUidLabel, batch.ControllerUidLabel} {
			if _, ok := j.Spec.Template.Labels[k]; !ok {
				j.Spec.Template.Labels[k] = string(j.UID)
			}
		}
		if j.Spec.Selector == nil {
			j.Spec.Selector = &metav1.LabelSelector{}
		}
		if j.Spec.Selector.MatchLabels == nil {
			j.Spec.Selector.MatchLabels = map[string]string{}
		}
		j.Spec.Selector.MatchLabels[batch.ControllerUidLabel] = string(j.UID)
	}
	opts := batchvalidation.JobValidationOptions{
		PodValidationOptions:  podutil.GetValidationOptionsFromPodTemplate(&j.Spec.Template, nil),
		RequirePrefixedLabels: true,
	}
	return batchvalidation.ValidateJobCreate(j, opts)
}

// check fills o's identity and typed object, and records decoding and API validation problems.
func (c *apiChecker) check(o *object) {
	var head struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(o.raw, &head); err != nil {
		o.problem("not a Kubernetes object: %v", err)
		return
	}
	gv, err := schema.ParseGroupVersion(head.APIVersion)
	if err != nil {
		o.problem("apiVersion %q: %v", head.APIVersion, err)
		return
	}
	o.gvk = gv.WithKind(head.Kind)
	o.name = head.Metadata.Name
	o.namespace = head.Metadata.Namespace
	crd, isCRD := c.crds[o.gvk]
	kind, isBuiltin := c.builtin[o.gvk.GroupKind()]
	// Every kind known here is namespaced; `kubectl apply` puts them in "default" unless told.
	if !isCRD && !isBuiltin {
		o.problem("this validator has no API validation for %s: add the kind to api.go", o.gvk.GroupKind())
		return
	}
	if o.namespace == "" {
		o.namespace = "default"
	}

	obj, gvk, err := c.decoder.Decode(o.raw, nil, nil)
	strict, isStrict := runtime.AsStrictDecodingError(err)
	switch {
	case err == nil:
	case isStrict && obj != nil:
		for _, e := range strict.Errors() {
			o.problem("%v", e)
		}
	default:
		o.problem("does not decode as %s: %v", o.gvk, err)
		return
	}
	o.typed = obj
	o.gvk = *gvk

	if isCRD {
		c.checkCustomResource(o, crd)
	} else {
		c.checkBuiltin(o, kind)
	}
}

// checkBuiltin defaults and converts a copy of the object to the internal version, then runs
// kube-apiserver's create-time validation on it.
func (c *apiChecker) checkBuiltin(o *object, kind builtinKind) {
	if kind.typedOnly {
		accessor, err := meta.Accessor(o.typed)
		if err != nil {
			o.problem("%v", err)
			return
		}
		accessor.SetNamespace(o.namespace)
		for _, e := range metavalidation.ValidateObjectMetaAccessor(accessor, true, metavalidation.NameIsDNSSubdomain, field.NewPath("metadata")) {
			o.problem("%s", e.Error())
		}
		return
	}
	external := o.typed.DeepCopyObject()
	c.scheme.Default(external)
	internal, err := c.scheme.ConvertToVersion(external, schema.GroupVersion{Group: o.gvk.Group, Version: runtime.APIVersionInternal})
	if err != nil {
		o.problem("cannot convert to the internal version: %v", err)
		return
	}
	objMeta, err := meta.Accessor(internal)
	if err != nil {
		o.problem("%v", err)
		return
	}
	objMeta.SetNamespace(o.namespace)

	if kind.strategy == nil {
		for _, e := range kind.validate(internal) {
			o.problem("%s", e.Error())
		}
		return
	}

	rest.FillObjectMetaSystemFields(objMeta) // what the API server sets before BeforeCreate
	prefix := "apis"
	if o.gvk.Group == "" {
		prefix = "api"
	}
	ctx := genericapirequest.WithNamespace(context.Background(), o.namespace)
	ctx = genericapirequest.WithRequestInfo(ctx, &genericapirequest.RequestInfo{
		IsResourceRequest: true, Verb: "create", APIPrefix: prefix,
		APIGroup: o.gvk.Group, APIVersion: o.gvk.Version,
		Namespace: o.namespace, Resource: kind.resource, Name: o.name,
	})
	warnings := &warningList{}
	ctx = warning.WithWarningRecorder(ctx, warnings)
	if err := rest.BeforeCreate(kind.strategy, ctx, internal); err != nil {
		var status apierrors.APIStatus
		if errors.As(err, &status) && status.Status().Details != nil && len(status.Status().Details.Causes) > 0 {
			for _, cause := range status.Status().Details.Causes {
				o.problem("%s: %s", cause.Field, cause.Message)
			}
		} else {
			o.problem("%v", err)
		}
	}
	for _, w := range *warnings {
		o.note("API server warning: %s", w)
	}
}

type warningList []string

func (w *warningList) AddWarning(_, text string) { *w = append(*w, text) }

// addCRD registers the served versions of a CRD, whose schema is validated as kube-apiserver's
// apiextensions code does: pruning (unknown fields), structural defaulting, OpenAPI validation.
func (c *apiChecker) addCRD(data []byte, goModule string) error {
	var crd apiextensionsv1.CustomResourceDefinition
	if err := sigsyaml.UnmarshalStrict(data, &crd); err != nil {
		return err
	}
	if err := sameRelease(crd.Annotations["operator.prometheus.io/version"], goModule); err != nil {
		return err
	}
	for _, v := range crd.Spec.Versions {
		if !v.Served || v.Schema == nil || v.Schema.OpenAPIV3Schema == nil {
			continue
		}
		props := &apiextensions.JSONSchemaProps{}
		if err := apiextensionsv1.Convert_v1_JSONSchemaProps_To_apiextensions_JSONSchemaProps(v.Schema.OpenAPIV3Schema, props, nil); err != nil {
			return err
		}
		if path := celRule(props, "spec.versions["+v.Name+"].schema"); path != "" {
			// Refuse rather than silently skip: evaluating CEL needs the apiserver's CEL stack.
			return fmt.Errorf("%s has x-kubernetes-validations (CEL), which this validator does not evaluate", path)
		}
		validator, _, err := apiservervalidation.NewSchemaValidator(props)
		if err != nil {
			return err
		}
		structural, err := structuralschema.NewStructural(props)
		if err != nil {
			return err
		}
		gvk := schema.GroupVersionKind{Group: crd.Spec.Group, Version: v.Name, Kind: crd.Spec.Names.Kind}
		c.crds[gvk] = &crdVersion{
			namespaced: crd.Spec.Scope == apiextensionsv1.NamespaceScoped,
			validator:  validator, structural: structural,
		}
	}
	return nil
}

// sameRelease makes sure the embedded CRD and the Go types in go.mod come from one release.
func sameRelease(crdVersion, goModule string) error {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return nil
	}
	for _, dep := range info.Deps {
		if dep.Path == goModule {
			if dep.Replace != nil {
				dep = dep.Replace
			}
			if "v"+strings.TrimPrefix(crdVersion, "v") != dep.Version {
				return fmt.Errorf("the CRD in crds/ is from release %q but go.mod has %s %s: copy the CRD of that release",
					crdVersion, goModule, dep.Version)
			}
			return nil
		}
	}
	return nil
}

func celRule(s *apiextensions.JSONSchemaProps, path string) string {
	if s == nil {
		return ""
	}
	if len(s.XValidations) > 0 {
		return path
	}
	for name, p := range s.Properties {
		if found := celRule(&p, path+".properties."+name); found != "" {
			return found
		}
	}
	if s.Items != nil {
		if found := celRule(s.Items.Schema, path+".items"); found != "" {
			return found
		}
		for i := range s.Items.JSONSchemas {
			if found := celRule(&s.Items.JSONSchemas[i], path+".items"); found != "" {
				return found
			}
		}
	}
	if s.AdditionalProperties != nil {
		if found := celRule(s.AdditionalProperties.Schema, path+".additionalProperties"); found != "" {
			return found
		}
	}
	return ""
}

func (c *apiChecker) checkCustomResource(o *object, crd *crdVersion) {
	var u map[string]any
	if err := json.Unmarshal(o.raw, &u); err != nil { // numbers as int64/float64, as the API server
		o.problem("%v", err)
		return
	}
	if md, ok := u["metadata"].(map[string]any); ok && crd.namespaced {
		md["namespace"] = o.namespace
	}

	unknown := pruning.PruneWithOptions(runtime.DeepCopyJSON(u), crd.structural, true,
		structuralschema.UnknownFieldPathOptions{TrackUnknownFieldPaths: true})
	for _, path := range unknown {
		o.problem("unknown field %q", path)
	}
	structuraldefaulting.Default(u, crd.structural)
	obj := &unstructured.Unstructured{Object: u}
	errs := metavalidation.ValidateObjectMetaAccessor(obj, crd.namespaced, metavalidation.NameIsDNSSubdomain, field.NewPath("metadata"))
	errs = append(errs, apiservervalidation.ValidateCustomResource(nil, u, crd.validator)...)
	for _, e := range errs {
		o.problem("%s", e.Error())
	}
}
