// Command policy-evaluator decides recorded admission requests with Kubernetes' own
// ValidatingAdmissionPolicy and MutatingAdmissionPolicy admission plugins, the ones
// kube-apiserver runs (k8s.io/apiserver at the release the lab pins).
//
// webhook-dev builds it (`webhook-dev lab build`, or on first use) and talks to it over
// stdin/stdout, one JSON document a line:
//
//	policy-evaluator FILE...        the policies, bindings and param objects
//	← {"ok": true, "policies": [...]}  or  {"ok": false, "errors": ["<the apiserver's message>"]}
//	→ {"id": 1, "mode": "validating"|"mutating", "review": {AdmissionReview},
//	   "namespace": {"labels": {...}} | null, "control": {object} | null,
//	   "controlPatched": bool, "controlPatch": "<base64>" | "", "objects": bool}
//	← {"id": 1, "allowed": true, "code": 0, "reason": "", "message": "", "denial": "",
//	   "warnings": [...], "warningTexts": [...], "auditAnnotations": {...},
//	   "object": {...}, "control": {...}, "same": bool, "matched": [...], "missing": [...],
//	   "error": ""}
//
// "same" says whether the object after the policies' mutations and the control object are
// identical once decoded and defaulted; when they are and "objects" was not asked, both
// are left out (encoding them was most of a request's cost); else both come back.
//
// The policies are validated and defaulted as the apiserver's registry does before any
// request is read; one the apiserver would refuse is reported with its message.
package main

import (
	"bufio"
	"encoding/base64"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"runtime/debug"
	"runtime/pprof"
	"sort"
	"strings"
	"sync"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	"k8s.io/apiserver/pkg/admission"
	"k8s.io/apiserver/pkg/admission/initializer"
	"k8s.io/apiserver/pkg/admission/plugin/policy/generic"
	"k8s.io/apiserver/pkg/admission/plugin/policy/matching"
	"k8s.io/apiserver/pkg/admission/plugin/policy/mutating"
	"k8s.io/apiserver/pkg/admission/plugin/policy/validating"
	auditinternal "k8s.io/apiserver/pkg/apis/audit"
	"k8s.io/apiserver/pkg/audit"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	apiopenapi "k8s.io/apiserver/pkg/endpoints/openapi"
	genericapiserver "k8s.io/apiserver/pkg/server"
	"k8s.io/apiserver/pkg/util/compatibility"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	"k8s.io/apiserver/pkg/warning"
	"k8s.io/client-go/discovery"
	fakediscovery "k8s.io/client-go/discovery/fake"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/openapi"
	"k8s.io/klog/v2"
	"k8s.io/kube-openapi/pkg/builder3"
	"k8s.io/kube-openapi/pkg/spec3"
	"k8s.io/kube-openapi/pkg/validation/spec"

	"k8s.io/kubernetes/pkg/api/legacyscheme"
	admissionregistration "k8s.io/kubernetes/pkg/apis/admissionregistration"
	admissionregistrationvalidation "k8s.io/kubernetes/pkg/apis/admissionregistration/validation"
	generatedopenapi "k8s.io/kubernetes/pkg/generated/openapi"

	// Every built-in API group, as kube-apiserver installs them (controlplane's list):
	// their types, defaults and conversions.
	_ "k8s.io/kubernetes/pkg/apis/admission/install"
	_ "k8s.io/kubernetes/pkg/apis/admissionregistration/install"
	_ "k8s.io/kubernetes/pkg/apis/apiserverinternal/install"
	_ "k8s.io/kubernetes/pkg/apis/apps/install"
	_ "k8s.io/kubernetes/pkg/apis/authentication/install"
	_ "k8s.io/kubernetes/pkg/apis/authorization/install"
	_ "k8s.io/kubernetes/pkg/apis/autoscaling/install"
	_ "k8s.io/kubernetes/pkg/apis/batch/install"
	_ "k8s.io/kubernetes/pkg/apis/certificates/install"
	_ "k8s.io/kubernetes/pkg/apis/coordination/install"
	_ "k8s.io/kubernetes/pkg/apis/core/install"
	_ "k8s.io/kubernetes/pkg/apis/discovery/install"
	_ "k8s.io/kubernetes/pkg/apis/events/install"
	_ "k8s.io/kubernetes/pkg/apis/flowcontrol/install"
	_ "k8s.io/kubernetes/pkg/apis/networking/install"
	_ "k8s.io/kubernetes/pkg/apis/node/install"
	_ "k8s.io/kubernetes/pkg/apis/policy/install"
	_ "k8s.io/kubernetes/pkg/apis/rbac/install"
	_ "k8s.io/kubernetes/pkg/apis/resource/install"
	_ "k8s.io/kubernetes/pkg/apis/scheduling/install"
	_ "k8s.io/kubernetes/pkg/apis/storage/install"
	_ "k8s.io/kubernetes/pkg/apis/storagemigration/install"
)

const registrationGroup = "admissionregistration.k8s.io"

var scheme = legacyscheme.Scheme

// --- loading the policy files -----------------------------------------------------------

type loaded struct {
	vaps   []*admissionregistrationv1.ValidatingAdmissionPolicy
	vapbs  []*admissionregistrationv1.ValidatingAdmissionPolicyBinding
	maps   []*admissionregistrationv1.MutatingAdmissionPolicy
	mapbs  []*admissionregistrationv1.MutatingAdmissionPolicyBinding
	params []*unstructured.Unstructured
	errors []string
}

func load(paths []string) *loaded {
	l := &loaded{}
	for _, path := range paths {
		file, err := os.Open(path)
		if err != nil {
			l.errors = append(l.errors, err.Error())
			continue
		}
		decoder := utilyaml.NewYAMLOrJSONDecoder(bufio.NewReader(file), 4096)
		for {
			var doc map[string]interface{}
			if err := decoder.Decode(&doc); err != nil {
				if err != io.EOF {
					l.errors = append(l.errors, fmt.Sprintf("%s: %v", path, err))
				}
				break
			}
			if len(doc) == 0 {
				continue
			}
			l.add(path, &unstructured.Unstructured{Object: doc})
		}
		file.Close()
	}
	return l
}

func (l *loaded) add(path string, u *unstructured.Unstructured) {
	gvk := u.GroupVersionKind()
	if u.IsList() {
		_ = u.EachListItem(func(item runtime.Object) error {
			l.add(path, item.(*unstructured.Unstructured))
			return nil
		})
		return
	}
	var target runtime.Object
	switch {
	case gvk.Group != registrationGroup:
		l.params = append(l.params, u)
		return
	case gvk.Version != "v1":
		l.errors = append(l.errors, fmt.Sprintf("%s: %s %q is %s: write it as %s/v1",
			path, gvk.Kind, u.GetName(), u.GetAPIVersion(), registrationGroup))
		return
	case gvk.Kind == "ValidatingAdmissionPolicy":
		target = &admissionregistrationv1.ValidatingAdmissionPolicy{}
	case gvk.Kind == "ValidatingAdmissionPolicyBinding":
		target = &admissionregistrationv1.ValidatingAdmissionPolicyBinding{}
	case gvk.Kind == "MutatingAdmissionPolicy":
		target = &admissionregistrationv1.MutatingAdmissionPolicy{}
	case gvk.Kind == "MutatingAdmissionPolicyBinding":
		target = &admissionregistrationv1.MutatingAdmissionPolicyBinding{}
	default:
		l.params = append(l.params, u)
		return
	}
	// Strict, as kubectl's default field validation asks of the apiserver.
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, target, true); err != nil {
		l.errors = append(l.errors, fmt.Sprintf("%s %q is invalid: %v", gvk.Kind, u.GetName(), err))
		return
	}
	scheme.Default(target)
	if message := validate(target, gvk.Kind, u.GetName()); message != "" {
		l.errors = append(l.errors, message)
		return
	}
	switch object := target.(type) {
	case *admissionregistrationv1.ValidatingAdmissionPolicy:
		l.vaps = append(l.vaps, object)
	case *admissionregistrationv1.ValidatingAdmissionPolicyBinding:
		l.vapbs = append(l.vapbs, object)
	case *admissionregistrationv1.MutatingAdmissionPolicy:
		l.maps = append(l.maps, object)
	case *admissionregistrationv1.MutatingAdmissionPolicyBinding:
		l.mapbs = append(l.mapbs, object)
	}
}

// validate runs the registry's validation (what `kubectl apply` meets) on the internal
// form; the message is the apiserver's Invalid error, "" when the object is valid.
func validate(versioned runtime.Object, kind, name string) string {
	var errs field.ErrorList
	switch kind {
	case "ValidatingAdmissionPolicy":
		internal := &admissionregistration.ValidatingAdmissionPolicy{}
		if err := scheme.Convert(versioned, internal, nil); err != nil {
			return err.Error()
		}
		errs = admissionregistrationvalidation.ValidateValidatingAdmissionPolicy(internal)
	case "ValidatingAdmissionPolicyBinding":
		internal := &admissionregistration.ValidatingAdmissionPolicyBinding{}
		if err := scheme.Convert(versioned, internal, nil); err != nil {
			return err.Error()
		}
		errs = admissionregistrationvalidation.ValidateValidatingAdmissionPolicyBinding(internal)
	case "MutatingAdmissionPolicy":
		internal := &admissionregistration.MutatingAdmissionPolicy{}
		if err := scheme.Convert(versioned, internal, nil); err != nil {
			return err.Error()
		}
		errs = admissionregistrationvalidation.ValidateMutatingAdmissionPolicy(internal)
	case "MutatingAdmissionPolicyBinding":
		internal := &admissionregistration.MutatingAdmissionPolicyBinding{}
		if err := scheme.Convert(versioned, internal, nil); err != nil {
			return err.Error()
		}
		errs = admissionregistrationvalidation.ValidateMutatingAdmissionPolicyBinding(internal)
	}
	if len(errs) == 0 {
		return ""
	}
	return apierrors.NewInvalid(schema.GroupKind{Group: registrationGroup, Kind: kind}, name, errs).Error()
}

// --- the built-in types' OpenAPI, as the apiserver serves it at /openapi/v3 --------------

// builtinOpenAPI is every built-in type's schema under the names kube-apiserver gives
// them, with their group-version-kinds: what MutatingAdmissionPolicy's ApplyConfiguration
// merges by (list types, map keys), read by the plugin through discovery as in the apiserver.
type builtinOpenAPI struct {
	once     sync.Once
	document []byte
	err      error
	asked    chan struct{}
	askOnce  sync.Once
}

func (b *builtinOpenAPI) build() ([]byte, error) {
	b.once.Do(func() {
		namer := apiopenapi.NewDefinitionNamer(scheme)
		config := genericapiserver.DefaultOpenAPIV3Config(generatedopenapi.GetOpenAPIDefinitions, namer)
		names := make([]string, 0)
		for name := range generatedopenapi.GetOpenAPIDefinitions(func(path string) spec.Ref { return spec.Ref{} }) {
			// The API types; the rest (component configs) are never admitted.
			if strings.HasPrefix(name, "io.k8s.api.") || strings.HasPrefix(name, "io.k8s.apimachinery.") ||
				strings.HasPrefix(name, "k8s.io/api/") || strings.HasPrefix(name, "k8s.io/apimachinery/") {
				names = append(names, name)
			}
		}
		sort.Strings(names)
		schemas, err := builder3.BuildOpenAPIDefinitionsForResources(config, names...)
		if err != nil {
			b.err = err
			return
		}
		b.document, b.err = json.Marshal(&spec3.OpenAPI{
			Version:    "3.0.0",
			Info:       &spec.Info{InfoProps: spec.InfoProps{Title: "Kubernetes", Version: "v0"}},
			Components: &spec3.Components{Schemas: schemas},
		})
	})
	return b.document, b.err
}

func (b *builtinOpenAPI) Paths() (map[string]openapi.GroupVersion, error) {
	b.askOnce.Do(func() { close(b.asked) })
	paths := map[string]openapi.GroupVersion{}
	for _, gv := range scheme.PrioritizedVersionsAllGroups() {
		path := "apis/" + gv.Group + "/" + gv.Version
		if gv.Group == "" {
			path = "api/" + gv.Version
		}
		paths[path] = builtinGroupVersion{b}
	}
	return paths, nil
}

type builtinGroupVersion struct{ source *builtinOpenAPI }

func (g builtinGroupVersion) Schema(string) ([]byte, error) { return g.source.build() }
func (g builtinGroupVersion) ServerRelativeURL() string     { return "/openapi/v3/builtin" }

type discoveryWithOpenAPI struct {
	*fakediscovery.FakeDiscovery
	openapi openapi.Client
}

func (d *discoveryWithOpenAPI) OpenAPIV3() openapi.Client { return d.openapi }

type clientset struct {
	*fake.Clientset
	discovery discovery.DiscoveryInterfaces
}

func (c *clientset) Discovery() discovery.DiscoveryInterfaces { return c.discovery }

// --- what a recording does not hold ---------------------------------------------------

// missing collects, per request, what a policy read that the recording does not hold.
type missing struct {
	mu    sync.Mutex
	items map[string]bool
}

func (m *missing) add(what string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.items[what] = true
}

func (m *missing) list() []string {
	out := []string{}
	for item := range m.items {
		out = append(out, item)
	}
	sort.Strings(out)
	return out
}

// evaluating is what the request being evaluated lacks; requests are evaluated one at a
// time (main's loop), and the CEL authorizer library does not pass the request's context
// down to the authorizer.
var evaluating struct {
	sync.Mutex
	gaps *missing
}

// absentAuthorizer stands for the cluster's authorizer, which a recording does not hold:
// every check it is asked is reported missing, never answered by a guess.
type absentAuthorizer struct{}

func (absentAuthorizer) Authorize(ctx context.Context, a authorizer.Attributes) (authorizer.Decision, string, error) {
	evaluating.Lock()
	defer evaluating.Unlock()
	if evaluating.gaps != nil {
		evaluating.gaps.add("authorizer")
	}
	return authorizer.DecisionNoOpinion, "webhook-dev: the recording holds no authorizer", nil
}

// --- the evaluator ----------------------------------------------------------------------

type evaluator struct {
	policies   *loaded
	client     *clientset
	informers  informers.SharedInformerFactory
	validating *validating.Plugin
	mutating   admission.MutationInterface
	matcher    generic.PolicyMatcher
	objects    admission.ObjectInterfaces
	namespaces map[string]string // name -> labels as JSON, what the tracker holds
	viewCache  map[string][]policyView
}

func newEvaluator(l *loaded, ctx context.Context) (*evaluator, error) {
	objects := []runtime.Object{}
	for _, p := range l.vaps {
		objects = append(objects, p)
	}
	for _, p := range l.vapbs {
		objects = append(objects, p)
	}
	for _, p := range l.maps {
		objects = append(objects, p)
	}
	for _, p := range l.mapbs {
		objects = append(objects, p)
	}
	native := fake.NewSimpleClientset(objects...)
	oapi := &builtinOpenAPI{asked: make(chan struct{})}
	if _, err := oapi.build(); err != nil {
		return nil, fmt.Errorf("building the built-in types' OpenAPI: %w", err)
	}
	client := &clientset{native, &discoveryWithOpenAPI{native.Discovery().(*fakediscovery.FakeDiscovery), oapi}}

	restMapper, dynamicScheme, listKinds := paramMappings(l)
	dynamicObjects := []runtime.Object{}
	for _, p := range l.params {
		dynamicObjects = append(dynamicObjects, p)
	}
	dynamicClient := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(dynamicScheme, listKinds, dynamicObjects...)
	factory := informers.NewSharedInformerFactory(client, 0)

	init := initializer.New(client, dynamicClient, factory, authorizer.AuthorizerFunc(absentAuthorizer{}.Authorize), utilfeature.DefaultFeatureGate,
		compatibility.DefaultBuildEffectiveVersion(), ctx.Done(), restMapper)

	vap, err := validating.NewPlugin(nil)
	if err != nil {
		return nil, err
	}
	mapPlugin, err := mutating.NewPlugin(nil)
	if err != nil {
		return nil, err
	}
	for _, plugin := range []admission.Interface{vap, mapPlugin} {
		init.Initialize(plugin)
		if v, ok := plugin.(admission.InitializationValidator); ok {
			if err := v.ValidateInitialization(); err != nil {
				return nil, err
			}
		}
	}
	factory.Start(ctx.Done())
	deadline := time.Now().Add(30 * time.Second)
	for !vap.WaitForReady() || !mapPlugin.WaitForReady() {
		if time.Now().After(deadline) {
			return nil, errors.New("the admission policy plugins did not become ready")
		}
		time.Sleep(10 * time.Millisecond)
	}
	select { // the mutating dispatcher's schema loop has read the paths once
	case <-oapi.asked:
	case <-time.After(30 * time.Second):
	}
	time.Sleep(50 * time.Millisecond)
	namespaceLister := factory.Core().V1().Namespaces().Lister()
	return &evaluator{
		policies:   l,
		client:     client,
		informers:  factory,
		validating: vap,
		mutating:   mapPlugin,
		matcher:    generic.NewPolicyMatcher(matching.NewMatcher(namespaceLister, client)),
		objects:    admission.NewObjectInterfacesFromScheme(scheme),
		namespaces: map[string]string{},
		viewCache:  map[string][]policyView{},
	}, nil
}

// paramMappings maps each param kind (policies' paramKind, param objects given) to a
// resource, namespaced when its given objects are.
func paramMappings(l *loaded) (*meta.DefaultRESTMapper, *runtime.Scheme, map[schema.GroupVersionResource]string) {
	mapper := meta.NewDefaultRESTMapper(nil)
	dynamicScheme := runtime.NewScheme()
	listKinds := map[schema.GroupVersionResource]string{}
	namespaced := map[schema.GroupVersionKind]bool{}
	kinds := map[schema.GroupVersionKind]bool{}
	for _, p := range l.params {
		kinds[p.GroupVersionKind()] = true
		if p.GetNamespace() != "" {
			namespaced[p.GroupVersionKind()] = true
		}
	}
	addKind := func(ref *admissionregistrationv1.ParamKind) {
		if ref == nil {
			return
		}
		gv, err := schema.ParseGroupVersion(ref.APIVersion)
		if err == nil {
			kinds[gv.WithKind(ref.Kind)] = true
		}
	}
	for _, p := range l.vaps {
		addKind(p.Spec.ParamKind)
	}
	for _, p := range l.maps {
		addKind(p.Spec.ParamKind)
	}
	for gvk := range kinds {
		plural, _ := meta.UnsafeGuessKindToResource(gvk)
		scope := meta.RESTScopeRoot
		if namespaced[gvk] || (gvk.Group == "" && gvk.Kind != "Namespace" && gvk.Kind != "Node") {
			scope = meta.RESTScopeNamespace
		}
		mapper.AddSpecific(gvk, plural, plural, scope)
		dynamicScheme.AddKnownTypeWithName(gvk, &unstructured.Unstructured{})
		dynamicScheme.AddKnownTypeWithName(gvk.GroupVersion().WithKind(gvk.Kind+"List"), &unstructured.UnstructuredList{})
		listKinds[plural] = gvk.Kind + "List"
	}
	return mapper, dynamicScheme, listKinds
}

type request struct {
	ID        int64                       `json:"id"`
	Mode      string                      `json:"mode"`
	Review    admissionv1.AdmissionReview `json:"review"`
	Namespace *struct {
		Labels map[string]string `json:"labels"`
	} `json:"namespace"`
	Control json.RawMessage `json:"control"`
	// Objects: return the object and the control object even when they are equal
	// (replay --json shows them); otherwise an equal pair is only "same": true, which
	// spares encoding and decoding two whole objects a request.
	Objects bool `json:"objects"`
	// ControlPatched: the webhook's answer patched the object. The apiserver decodes and
	// defaults only a patched object; an unpatched one stays as the request carried it.
	ControlPatched *bool `json:"controlPatched"`
	// ControlPatch: instead of "control", the webhook's JSON Patch (base64, as answered;
	// "" when it answered without one), applied here to the request's object with the
	// JSON Patch library kube-apiserver applies webhook patches with.
	ControlPatch *string `json:"controlPatch"`
}

type result struct {
	ID               int64                  `json:"id"`
	Allowed          bool                   `json:"allowed"`
	Code             int32                  `json:"code"`
	Reason           string                 `json:"reason"`
	Message          string                 `json:"message"`
	Denial           string                 `json:"denial"`
	Warnings         []string               `json:"warnings"`
	WarningTexts     []string               `json:"warningTexts"`
	AuditAnnotations map[string]string      `json:"auditAnnotations"`
	Object           map[string]interface{} `json:"object"`
	Control          map[string]interface{} `json:"control"`
	Same             *bool                  `json:"same,omitempty"`
	Matched          []string               `json:"matched"`
	Missing          []string               `json:"missing"`
	Error            string                 `json:"error"`
}

type warnings struct {
	mu    sync.Mutex
	texts []string
}

func (w *warnings) AddWarning(agent, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.texts = append(w.texts, text)
}

var (
	denial  = regexp.MustCompile(`(?s)^(?:Validating|Mutating)AdmissionPolicy '[^']*' (?:with binding '[^']*' )?denied request: (.*)$`)
	warnRaw = regexp.MustCompile(`(?s)^Validation failed for ValidatingAdmissionPolicy '[^']*' with binding '[^']*': (.*)$`)
	nsRef   = regexp.MustCompile(`\bnamespaceObject\b`)
)

func (e *evaluator) evaluate(ctx context.Context, req *request) (out result) {
	out = result{ID: req.ID, Allowed: true, Warnings: []string{}, WarningTexts: []string{},
		AuditAnnotations: map[string]string{}, Matched: []string{}, Missing: []string{}}
	if req.Review.Request == nil {
		out.Error = "the review has no request"
		return out
	}
	r := req.Review.Request
	attrs, err := e.attributes(r)
	if err != nil {
		out.Error = err.Error()
		return out
	}
	hasControl := len(req.Control) > 0 && string(req.Control) != "null"
	controlPatched := hasControl && (req.ControlPatched == nil || *req.ControlPatched)
	if req.ControlPatch != nil {
		hasControl, controlPatched = true, *req.ControlPatch != ""
		req.Control = r.Object.Raw
		if controlPatched {
			if req.Control, err = applyPatch(r.Object.Raw, *req.ControlPatch); err != nil {
				out.Error = err.Error()
				return out
			}
		}
	}
	gaps := &missing{items: map[string]bool{}}
	if err := e.ensureNamespace(r, req, attrs, gaps); err != nil {
		out.Error = err.Error()
		return out
	}
	e.checkParams(req.Mode, attrs, gaps)
	recorder := &warnings{}
	evaluating.Lock()
	evaluating.gaps = gaps
	evaluating.Unlock()
	defer func() {
		evaluating.Lock()
		evaluating.gaps = nil
		evaluating.Unlock()
	}()
	ctx = warning.WithWarningRecorder(ctx, recorder)
	ctx = audit.WithAuditContext(ctx)
	_ = audit.AuditContextFrom(ctx).Init(audit.RequestAuditConfig{Level: auditinternal.LevelMetadata}, nil)

	out.Matched = e.matched(req.Mode, attrs)
	if len(out.Matched) == 0 && !controlPatched && !req.Objects {
		// No policy can take it (namespace aside) and the webhook left the object as it
		// came: the plugins would do nothing, and the objects are the same.
		if hasControl {
			same := true
			out.Same = &same
		}
		out.Missing = gaps.list()
		return out
	}
	var control runtime.Object
	if hasControl {
		control, err = e.normalize(r, req.Control, controlPatched)
		if err != nil {
			out.Error = err.Error()
			return out
		}
	}
	if req.Mode == "mutating" {
		if handles := e.mutating.Handles(attrs.GetOperation()); handles {
			err = admission.WithAudit(reinvoking{e.mutating}).(admission.MutationInterface).Admit(ctx, attrs, e.objects)
		}
		if object := attrs.GetObject(); object != nil {
			gvk := attrs.GetKind()
			same := false
			if control != nil {
				// Identical values are surely the same object; anything else (nil against
				// empty, a quantity written two ways) goes back as JSON for webhook-dev to
				// compare as it compares every answer. reflect's DeepEqual is the cheap
				// test: equality.Semantic's was a seventh of a request's time.
				object.GetObjectKind().SetGroupVersionKind(gvk)
				control.GetObjectKind().SetGroupVersionKind(gvk)
				same = reflect.DeepEqual(control, object)
				out.Same = &same
			}
			if !same || req.Objects || control == nil {
				mapped, convErr := toMap(object, gvk)
				if convErr != nil && err == nil {
					err = convErr
				}
				out.Object = mapped
				if control != nil {
					out.Control, convErr = toMap(control, gvk)
					if convErr != nil && err == nil {
						err = convErr
					}
				}
			}
		}
	} else {
		if e.validating.Handles(attrs.GetOperation()) {
			err = admission.WithAudit(e.validating).(admission.ValidationInterface).Validate(ctx, attrs, e.objects)
		}
	}
	if err != nil {
		out.Allowed = false
		var status apierrors.APIStatus
		if errors.As(err, &status) {
			s := status.Status()
			out.Code, out.Reason, out.Message = s.Code, string(s.Reason), s.Message
			if s.Details != nil && len(s.Details.Causes) > 0 {
				out.Denial = s.Details.Causes[len(s.Details.Causes)-1].Message
			}
		} else {
			out.Code, out.Message = 500, err.Error()
		}
		if match := denial.FindStringSubmatch(out.Denial); match != nil {
			out.Denial = match[1]
		} else if out.Denial == "" {
			out.Denial = out.Message
		}
	}
	for _, text := range recorder.texts {
		out.WarningTexts = append(out.WarningTexts, text)
		if match := warnRaw.FindStringSubmatch(text); match != nil {
			out.Warnings = append(out.Warnings, match[1])
		} else {
			out.Warnings = append(out.Warnings, text)
		}
	}
	for key, value := range audit.AuditContextFrom(ctx).GetEventAnnotations() {
		out.AuditAnnotations[key] = value
	}
	out.Missing = gaps.list()
	return out
}

type reinvoking struct{ admission.MutationInterface }

// Admit as the apiserver's admission chain does: once, then again when a mutation asks
// for it (reinvocationPolicy: IfNeeded).
func (r reinvoking) Admit(ctx context.Context, a admission.Attributes, o admission.ObjectInterfaces) error {
	if err := r.MutationInterface.Admit(ctx, a, o); err != nil {
		return err
	}
	if s := a.GetReinvocationContext(); s.ShouldReinvoke() {
		s.SetIsReinvoke()
		return r.MutationInterface.Admit(ctx, a, o)
	}
	return nil
}

func (e *evaluator) attributes(r *admissionv1.AdmissionRequest) (admission.Attributes, error) {
	gvk := schema.GroupVersionKind{Group: r.Kind.Group, Version: r.Kind.Version, Kind: r.Kind.Kind}
	gvr := schema.GroupVersionResource{Group: r.Resource.Group, Version: r.Resource.Version, Resource: r.Resource.Resource}
	object, err := e.decode(gvk, r.Object.Raw)
	if err != nil {
		return nil, fmt.Errorf("request.object: %w", err)
	}
	old, err := e.decode(gvk, r.OldObject.Raw)
	if err != nil {
		return nil, fmt.Errorf("request.oldObject: %w", err)
	}
	var options runtime.Object
	if len(r.Options.Raw) > 0 {
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(r.Options.Raw); err == nil {
			options = u
		}
	}
	dryRun := r.DryRun != nil && *r.DryRun
	return admission.NewAttributesRecord(object, old, gvk, r.Namespace, r.Name, gvr, r.SubResource,
		admission.Operation(r.Operation), options, dryRun, userInfo(r.UserInfo)), nil
}

// decode reads an object as the apiserver holds it: typed for a built-in kind (so
// mutations are defaulted as there), unstructured for a custom resource.
func (e *evaluator) decode(gvk schema.GroupVersionKind, raw []byte) (runtime.Object, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	if scheme.Recognizes(gvk) {
		typed, err := scheme.New(gvk)
		if err == nil {
			if err := json.Unmarshal(raw, typed); err != nil {
				return nil, err
			}
			typed.GetObjectKind().SetGroupVersionKind(gvk)
			return typed, nil
		}
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(raw); err != nil {
		return nil, err
	}
	return u, nil
}

// applyPatch is the webhook's answer applied to the object, as the apiserver's mutating
// webhook dispatcher applies it.
func applyPatch(object []byte, encoded string) ([]byte, error) {
	raw, err := base64.StdEncoding.DecodeString(encoded)
	if err != nil {
		return nil, fmt.Errorf("the webhook's patch is not base64: %w", err)
	}
	patch, err := jsonpatch.DecodePatch(raw)
	if err != nil {
		return nil, fmt.Errorf("the webhook's patch is not a JSON Patch: %w", err)
	}
	patched, err := patch.Apply(object)
	if err != nil {
		return nil, fmt.Errorf("the webhook's patch does not apply: %w", err)
	}
	return patched, nil
}

// normalize passes the webhook's resulting object through what the apiserver does to
// an object a mutating webhook patched: decoded as its type, defaulted.
func (e *evaluator) normalize(r *admissionv1.AdmissionRequest, raw []byte, defaulted bool) (runtime.Object, error) {
	gvk := schema.GroupVersionKind{Group: r.Kind.Group, Version: r.Kind.Version, Kind: r.Kind.Kind}
	decoded, err := e.decode(gvk, raw)
	if err != nil {
		return nil, fmt.Errorf("the webhook's object: %w", err)
	}
	if defaulted && decoded != nil {
		scheme.Default(decoded)
	}
	return decoded, nil
}

// toMap is an object as JSON would carry it, with its apiVersion and kind (a typed
// object's conversions leave them empty).
func toMap(object runtime.Object, gvk schema.GroupVersionKind) (map[string]interface{}, error) {
	raw, err := json.Marshal(object)
	if err != nil {
		return nil, err
	}
	out := map[string]interface{}{}
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, err
	}
	out["apiVersion"], out["kind"] = gvk.GroupVersion().String(), gvk.Kind
	return out, nil
}

func userInfo(u authenticationv1.UserInfo) user.Info {
	extra := map[string][]string{}
	for key, values := range u.Extra {
		extra[key] = values
	}
	return &user.DefaultInfo{Name: u.Username, UID: u.UID, Groups: u.Groups, Extra: extra}
}

// ensureNamespace puts the request's Namespace where the plugins look for it: with its
// recorded labels, or, when the recording has none, with none — and then any policy
// that could match and reads the namespace (namespaceObject, a namespaceSelector) makes
// the request's outcome unknown: "namespaceObject" is reported missing.
func (e *evaluator) ensureNamespace(r *admissionv1.AdmissionRequest, req *request, attrs admission.Attributes, gaps *missing) error {
	name := r.Namespace
	if name == "" || (r.Kind.Kind == "Namespace" && r.Kind.Group == "" && r.Kind.Version == "v1") {
		return nil
	}
	var wanted map[string]string
	if req.Namespace != nil {
		wanted = req.Namespace.Labels
	} else if e.readsNamespace(req.Mode, attrs) {
		gaps.add("namespaceObject")
	}
	if wanted == nil {
		wanted = map[string]string{}
	}
	wanted[corev1.LabelMetadataName] = name
	key, _ := json.Marshal(wanted)
	if e.namespaces[name] == string(key) {
		return nil
	}
	namespace := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: wanted}}
	tracker := e.client.Clientset.Tracker()
	var err error
	if _, known := e.namespaces[name]; known {
		err = tracker.Update(corev1.SchemeGroupVersion.WithResource("namespaces"), namespace, "")
	} else {
		err = tracker.Add(namespace)
	}
	if err != nil {
		return err
	}
	e.namespaces[name] = string(key)
	lister := e.informers.Core().V1().Namespaces().Lister()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		found, err := lister.Get(name)
		if err != nil && !apierrors.IsNotFound(err) {
			return err
		}
		if found != nil && labels.Equals(found.Labels, wanted) {
			return nil
		}
	}
	return fmt.Errorf("namespace %s did not reach the plugins' cache", name)
}

type policyView struct {
	name      string
	accessor  generic.PolicyAccessor
	text      []byte
	selectors bool // a namespaceSelector that selects by labels
	bindings  []bindingView
}

type bindingView struct {
	name      string
	accessor  generic.BindingAccessor
	paramRef  *admissionregistrationv1.ParamRef
	paramKind *admissionregistrationv1.ParamKind
	selectors bool
}

func labelSelecting(s *metav1.LabelSelector) bool {
	return s != nil && (len(s.MatchLabels) > 0 || len(s.MatchExpressions) > 0)
}

// views lists the policies of one mode with their namespace selectors cleared: to
// ask whether a policy could match whatever the namespace's labels are.
func (e *evaluator) views(mode string) []policyView {
	if cached, ok := e.viewCache[mode]; ok {
		return cached
	}
	views := e.buildViews(mode)
	e.viewCache[mode] = views
	return views
}

func (e *evaluator) buildViews(mode string) []policyView {
	views := []policyView{}
	if mode == "mutating" {
		for _, p := range e.policies.maps {
			p := p.DeepCopy()
			view := policyView{name: p.Name}
			view.text, _ = json.Marshal(p.Spec)
			if p.Spec.MatchConstraints != nil {
				view.selectors = labelSelecting(p.Spec.MatchConstraints.NamespaceSelector)
				p.Spec.MatchConstraints.NamespaceSelector = &metav1.LabelSelector{}
			}
			view.accessor = mutating.NewMutatingAdmissionPolicyAccessor(p)
			for _, b := range e.policies.mapbs {
				if b.Spec.PolicyName != p.Name {
					continue
				}
				b := b.DeepCopy()
				bv := bindingView{name: b.Name, paramRef: b.Spec.ParamRef, paramKind: p.Spec.ParamKind}
				if b.Spec.MatchResources != nil {
					bv.selectors = labelSelecting(b.Spec.MatchResources.NamespaceSelector)
					b.Spec.MatchResources.NamespaceSelector = &metav1.LabelSelector{}
				}
				bv.accessor = mutating.NewMutatingAdmissionPolicyBindingAccessor(b)
				view.bindings = append(view.bindings, bv)
			}
			views = append(views, view)
		}
		return views
	}
	for _, p := range e.policies.vaps {
		p := p.DeepCopy()
		view := policyView{name: p.Name}
		view.text, _ = json.Marshal(p.Spec)
		if p.Spec.MatchConstraints != nil {
			view.selectors = labelSelecting(p.Spec.MatchConstraints.NamespaceSelector)
			p.Spec.MatchConstraints.NamespaceSelector = &metav1.LabelSelector{}
		}
		view.accessor = validating.NewValidatingAdmissionPolicyAccessor(p)
		for _, b := range e.policies.vapbs {
			if b.Spec.PolicyName != p.Name {
				continue
			}
			b := b.DeepCopy()
			bv := bindingView{name: b.Name, paramRef: b.Spec.ParamRef, paramKind: p.Spec.ParamKind}
			if b.Spec.MatchResources != nil {
				bv.selectors = labelSelecting(b.Spec.MatchResources.NamespaceSelector)
				b.Spec.MatchResources.NamespaceSelector = &metav1.LabelSelector{}
			}
			bv.accessor = validating.NewValidatingAdmissionPolicyBindingAccessor(b)
			view.bindings = append(view.bindings, bv)
		}
		views = append(views, view)
	}
	return views
}

// couldMatch: the policy and which of its bindings match the request, namespace aside.
func (e *evaluator) couldMatch(view policyView, attrs admission.Attributes) (bool, []bindingView) {
	matches, _, _, err := e.matcher.DefinitionMatches(attrs, e.objects, view.accessor)
	if err != nil || !matches {
		return err != nil, nil
	}
	bindings := []bindingView{}
	for _, b := range view.bindings {
		if ok, err := e.matcher.BindingMatches(attrs, e.objects, b.accessor); ok || err != nil {
			bindings = append(bindings, b)
		}
	}
	return len(bindings) > 0, bindings
}

func (e *evaluator) readsNamespace(mode string, attrs admission.Attributes) bool {
	for _, view := range e.views(mode) {
		matches, bindings := e.couldMatch(view, attrs)
		if !matches {
			continue
		}
		if view.selectors || nsRef.Match(view.text) {
			return true
		}
		for _, b := range bindings {
			if b.selectors {
				return true
			}
		}
	}
	return false
}

// matched names the policies (policy/binding) whose rules take the request, the
// namespace's labels as recorded (or, unrecorded, aside).
func (e *evaluator) matched(mode string, attrs admission.Attributes) []string {
	names := []string{}
	for _, view := range e.views(mode) {
		if ok, bindings := e.couldMatch(view, attrs); ok {
			for _, b := range bindings {
				names = append(names, view.name+"/"+b.name)
			}
		}
	}
	return names
}

// checkParams reports a paramRef that finds nothing among the objects given: the
// cluster may hold it, the recording does not.
func (e *evaluator) checkParams(mode string, attrs admission.Attributes, gaps *missing) {
	for _, view := range e.views(mode) {
		_, bindings := e.couldMatch(view, attrs)
		for _, b := range bindings {
			if b.paramRef == nil || b.paramKind == nil {
				continue
			}
			namespace := b.paramRef.Namespace
			if namespace == "" {
				namespace = attrs.GetNamespace()
			}
			if !e.hasParam(b.paramKind, b.paramRef, namespace) {
				what := b.paramKind.Kind + " "
				if b.paramRef.Name != "" {
					what += strings.TrimPrefix(namespace+"/", "/") + b.paramRef.Name
				} else {
					what += "selected in " + namespace
				}
				gaps.add("param " + what)
			}
		}
	}
}

func (e *evaluator) hasParam(kind *admissionregistrationv1.ParamKind, ref *admissionregistrationv1.ParamRef, namespace string) bool {
	var selector labels.Selector = labels.Everything()
	if ref.Selector != nil {
		parsed, err := metav1.LabelSelectorAsSelector(ref.Selector)
		if err != nil {
			return false
		}
		selector = parsed
	}
	for _, p := range e.policies.params {
		if p.GetAPIVersion() != kind.APIVersion || p.GetKind() != kind.Kind {
			continue
		}
		if p.GetNamespace() != "" && p.GetNamespace() != namespace {
			continue
		}
		if ref.Name != "" && p.GetName() != ref.Name {
			continue
		}
		if ref.Name == "" && !selector.Matches(labels.Set(p.GetLabels())) {
			continue
		}
		return true
	}
	return false
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: policy-evaluator POLICY.yaml...")
		os.Exit(2)
	}
	// The plugins log their informers' progress; stdout is the protocol, stderr is for
	// a failure to report.
	klog.SetOutput(io.Discard)
	// The heap stays small (one request at a time): collect less often for less CPU.
	debug.SetGCPercent(400)
	klog.LogToStderr(false)
	// Answers are buffered and flushed when no request is waiting: a burst of requests
	// gets its answers in a few writes, not one each.
	stdout := bufio.NewWriterSize(os.Stdout, 1<<20)
	out := json.NewEncoder(stdout)
	if path := os.Getenv("WEBHOOK_DEV_EVALUATOR_CPUPROFILE"); path != "" {
		if file, err := os.Create(path); err == nil {
			_ = pprof.StartCPUProfile(file)
			defer pprof.StopCPUProfile()
		}
	}
	policies := load(os.Args[1:])
	if len(policies.errors) > 0 {
		_ = out.Encode(map[string]interface{}{"ok": false, "errors": policies.errors})
		_ = stdout.Flush()
		os.Exit(1)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e, err := newEvaluator(policies, ctx)
	if err != nil {
		_ = out.Encode(map[string]interface{}{"ok": false, "errors": []string{err.Error()}})
		_ = stdout.Flush()
		os.Exit(1)
	}
	names := []string{}
	for _, p := range policies.vaps {
		names = append(names, "ValidatingAdmissionPolicy/"+p.Name)
	}
	for _, p := range policies.maps {
		names = append(names, "MutatingAdmissionPolicy/"+p.Name)
	}
	_ = out.Encode(map[string]interface{}{"ok": true, "policies": names, "params": len(policies.params)})
	_ = stdout.Flush()
	input := bufio.NewReaderSize(os.Stdin, 1<<20)
	for {
		line, err := input.ReadBytes('\n')
		if len(strings.TrimSpace(string(line))) > 0 {
			var req request
			var res result
			if decodeErr := json.Unmarshal(line, &req); decodeErr != nil {
				res = result{ID: req.ID, Error: "not a request: " + decodeErr.Error()}
			} else {
				res = e.evaluate(ctx, &req)
			}
			if encodeErr := out.Encode(res); encodeErr != nil {
				os.Exit(1)
			}
		}
		if input.Buffered() == 0 || err != nil {
			if flushErr := stdout.Flush(); flushErr != nil {
				os.Exit(1)
			}
		}
		if err != nil {
			return
		}
	}
}
