//! Tables of templates, parameters and what they render to.

use serde_json::{Value, json};

use super::*;

fn params(v: Value) -> Params {
    match v {
        Value::Object(m) => m,
        other => panic!("params must be an object, got {other}"),
    }
}

const FAST: TemplateOptions = TemplateOptions {
    go_template: false,
    missing_key_error: false,
};
const GO: TemplateOptions = TemplateOptions {
    go_template: true,
    missing_key_error: false,
};
const GO_STRICT: TemplateOptions = TemplateOptions {
    go_template: true,
    missing_key_error: true,
};

/// Data most Go-template cases use.
fn data() -> Params {
    params(json!({
        "name": "web",
        "n": 3,
        "f": 1.5,
        "zero": 0,
        "empty": "",
        "yes": true,
        "no": false,
        "nothing": null,
        "list": ["a", "b", "c"],
        "nums": [3, 1, 2],
        "map": {"b": 2, "a": 1},
        "path": {"basename": "guestbook", "path": "apps/guestbook", "segments": ["apps", "guestbook"]},
        "values": {"env": "prod", "region": "eu-west-1"},
        "nested": {"inner": {"deep": "value"}},
        "Upper Case": "spaced",
    }))
}

/// Renders `cases` of (template, expected) with the Go engine over
/// [`data`].
fn check_go(cases: &[(&str, &str)]) {
    let data = data();
    for (template, want) in cases {
        match render_string(template, &data, &GO) {
            Ok(got) => assert_eq!(&got, want, "template {template:?}"),
            Err(e) => panic!("template {template:?} failed: {e}"),
        }
    }
}

/// Renders `cases` of (template, error substring) and expects errors.
fn check_go_errors(options: &TemplateOptions, cases: &[(&str, &str)]) {
    let data = data();
    for (template, want) in cases {
        match render_string(template, &data, options) {
            Ok(got) => {
                panic!("template {template:?} rendered {got:?}, want an error with {want:?}")
            }
            Err(e) => assert!(e.to_string().contains(want), "template {template:?}: {e}"),
        }
    }
}

#[test]
fn fasttemplate_replaces_known_keys_and_keeps_unknown_tags() {
    let p = params(json!({
        "path.basename": "guestbook",
        "path[0]": "apps",
        "values.env": "prod",
        "replicas": 3,
        "enabled": true,
        "gone": null,
    }));
    let cases = [
        ("{{path.basename}}", "guestbook"),
        ("{{ path.basename }}", "guestbook"),
        ("{{  path[0]  }}/{{values.env}}", "apps/prod"),
        ("app-{{path.basename}}-{{values.env}}", "app-guestbook-prod"),
        ("{{replicas}} {{enabled}}", "3 true"),
        ("[{{gone}}]", "[]"),
        ("{{unknown}} stays", "{{unknown}} stays"),
        (
            "{{ unknown }} keeps its spaces",
            "{{ unknown }} keeps its spaces",
        ),
        ("{{}} and {{ }}", "{{}} and {{ }}"),
        ("no tags", "no tags"),
        ("{{ .path.basename }}", "{{ .path.basename }}"),
        // Not templated on any one line: returned as is, like Argo CD.
        ("{{ path.basename", "{{ path.basename"),
        ("{{\npath.basename}}", "{{\npath.basename}}"),
        // The first `}}` closes the tag.
        ("{{ a {{path.basename}}", "{{ a {{path.basename}}"),
    ];
    for (template, want) in cases {
        assert_eq!(
            render_string(template, &p, &FAST).as_deref(),
            Ok(want),
            "{template:?}"
        );
    }
}

#[test]
fn fasttemplate_with_an_unclosed_tag_after_a_closed_one_is_an_error() {
    let p = params(json!({"a": "x"}));
    let err = render_string("{{a}} {{b", &p, &FAST).expect_err("unclosed");
    assert!(matches!(err, TemplateError::Parse { .. }), "{err}");
}

#[test]
fn render_value_renders_every_string_and_key_and_keeps_other_values() {
    let p = params(json!({"path": {"basename": "guestbook"}, "values": {"env": "prod"}}));
    let template = json!({
        "metadata": {
            "name": "{{ .path.basename }}-{{ .values.env }}",
            "labels": {"{{ .values.env }}": "yes"},
        },
        "spec": {
            "replicas": 3,
            "enabled": true,
            "none": null,
            "list": ["{{ .path.basename }}", 1],
        },
    });
    let got = render_value(&template, &p, &GO).expect("renders");
    assert_eq!(
        got,
        json!({
            "metadata": {"name": "guestbook-prod", "labels": {"prod": "yes"}},
            "spec": {"replicas": 3, "enabled": true, "none": null, "list": ["guestbook", 1]},
        })
    );
}

#[test]
fn go_fields_variables_and_literals() {
    check_go(&[
        ("plain text", "plain text"),
        ("{{ .name }}", "web"),
        ("{{.path.basename}}", "guestbook"),
        ("{{ .nested.inner.deep }}", "value"),
        ("{{ $.name }}", "web"),
        ("{{ . | len }}", "15"),
        (
            "{{ .n }} {{ .f }} {{ .yes }} {{ .list }} {{ .map }}",
            "3 1.5 true [a b c] map[a:1 b:2]",
        ),
        ("{{ .nothing }}", "<no value>"),
        ("{{ .missing }}", "<no value>"),
        ("{{ .missing.deeper }}", "<no value>"),
        ("{{ \"a\\tb\\n\" }}", "a\tb\n"),
        ("{{ `raw \\n` }}", "raw \\n"),
        (
            "{{ 42 }} {{ -7 }} {{ 0x1f }} {{ 1.25 }} {{ 1e3 }} {{ 'a' }}",
            "42 -7 31 1.25 1000 97",
        ),
        ("{{ true }} {{ false }}", "true false"),
        ("{{ $x := .name }}{{ $x }}", "web"),
        ("{{ $x := 1 }}{{ $x = 2 }}{{ $x }}", "2"),
        (
            "{{ $x := \"outer\" }}{{ if true }}{{ $x = \"inner\" }}{{ end }}{{ $x }}",
            "inner",
        ),
        (
            "{{ $x := \"outer\" }}{{ if true }}{{ $x := \"shadow\" }}{{ $x }}{{ end }} {{ $x }}",
            "shadow outer",
        ),
        ("{{ (index .path.segments 1) }}", "guestbook"),
        ("{{ (dict \"a\" (dict \"b\" \"c\")).a.b }}", "c"),
        ("{{ $m := .nested }}{{ $m.inner.deep }}", "value"),
        ("{{ index . \"Upper Case\" }}", "spaced"),
        ("a {{/* a comment */}} b", "a  b"),
        ("a {{- /* trimmed */ -}} b", "ab"),
    ]);
}

#[test]
fn go_trim_markers_remove_white_space_on_their_side() {
    check_go(&[
        ("a  {{- .name }}  b", "aweb  b"),
        ("a  {{ .name -}}  b", "a  webb"),
        ("a \n\t {{- .name -}} \n\t b", "awebb"),
        ("{{- .name -}}", "web"),
        ("x{{ 3 -}}\n\n{{- 4 }}y", "x34y"),
        ("{{ 3 -}}-{{ 4 }}", "3-4"),
    ]);
}

#[test]
fn go_if_else_if_else() {
    check_go(&[
        ("{{ if .yes }}y{{ end }}", "y"),
        ("{{ if .no }}y{{ else }}n{{ end }}", "n"),
        (
            "{{ if .no }}1{{ else if .zero }}2{{ else if .n }}3{{ else }}4{{ end }}",
            "3",
        ),
        (
            "{{ if .empty }}1{{ else if .nothing }}2{{ else }}3{{ end }}",
            "3",
        ),
        ("{{ if .missing }}1{{ else }}2{{ end }}", "2"),
        ("{{ if .list }}has{{ end }}", "has"),
        ("{{ if and .yes .n }}both{{ end }}", "both"),
        (
            "{{ if or .no .zero }}x{{ else }}neither{{ end }}",
            "neither",
        ),
        ("{{ if not .no }}not{{ end }}", "not"),
        ("{{ if $v := .name }}{{ $v }}{{ end }}", "web"),
        (
            "{{ if eq .values.env \"prod\" }}production{{ end }}",
            "production",
        ),
    ]);
}

#[test]
fn go_range_over_lists_maps_and_ints() {
    check_go(&[
        ("{{ range .list }}{{ . }},{{ end }}", "a,b,c,"),
        (
            "{{ range $i, $v := .list }}{{ $i }}={{ $v }} {{ end }}",
            "0=a 1=b 2=c ",
        ),
        ("{{ range $v := .list }}{{ $v }}{{ end }}", "abc"),
        (
            "{{ range $k, $v := .map }}{{ $k }}:{{ $v }};{{ end }}",
            "a:1;b:2;",
        ),
        ("{{ range .map }}{{ . }}{{ end }}", "12"),
        ("{{ range .empty_list }}x{{ else }}none{{ end }}", "none"),
        ("{{ range .missing }}x{{ else }}none{{ end }}", "none"),
        ("{{ range 3 }}{{ . }}{{ end }}", "012"),
        (
            "{{ range .list }}{{ if eq . \"b\" }}{{ break }}{{ end }}{{ . }}{{ end }}",
            "a",
        ),
        (
            "{{ range .list }}{{ if eq . \"b\" }}{{ continue }}{{ end }}{{ . }}{{ end }}",
            "ac",
        ),
        ("{{ range .list }}{{ $.name }}{{ end }}", "webwebweb"),
        (
            "{{ $n := 0 }}{{ range .list }}{{ $n = add $n 1 }}{{ end }}{{ $n }}",
            "3",
        ),
        (
            "{{ range $i, $s := .path.segments }}{{ if $i }}/{{ end }}{{ $s }}{{ end }}",
            "apps/guestbook",
        ),
    ]);
}

#[test]
fn go_with_define_template_block() {
    check_go(&[
        ("{{ with .values }}{{ .env }}{{ end }}", "prod"),
        (
            "{{ with .missing }}x{{ else }}fallback{{ end }}",
            "fallback",
        ),
        ("{{ with $v := .values.env }}{{ $v }}{{ end }}", "prod"),
        (
            "{{ with .no }}1{{ else with .name }}{{ . }}{{ end }}",
            "web",
        ),
        (
            "{{ define \"t\" }}[{{ . }}]{{ end }}{{ template \"t\" .name }}",
            "[web]",
        ),
        (
            "{{ define \"t\" }}[{{ . }}]{{ end }}{{ template \"t\" }}",
            "[<no value>]",
        ),
        ("{{ block \"b\" .values }}{{ .env }}{{ end }}", "prod"),
    ]);
}

#[test]
fn go_pipelines_pass_the_value_as_the_last_argument() {
    check_go(&[
        ("{{ .name | upper }}", "WEB"),
        ("{{ .name | printf \"%s-%s\" \"x\" }}", "x-web"),
        ("{{ .values.env | default \"dev\" | upper }}", "PROD"),
        ("{{ .missing | default \"dev\" }}", "dev"),
        (
            "{{ \"a-b\" | replace \"-\" \"_\" | upper | quote }}",
            "\"A_B\"",
        ),
        ("{{ (printf \"%d\" .n) | len }}", "1"),
    ]);
}

#[test]
fn go_builtins() {
    check_go(&[
        ("{{ len .list }} {{ len .name }} {{ len .map }}", "3 3 2"),
        (
            "{{ index .list 2 }} {{ index .map \"b\" }} {{ index .nested \"inner\" \"deep\" }}",
            "c 2 value",
        ),
        ("{{ index .map \"zzz\" }}", "<no value>"),
        (
            "{{ slice .list 1 }} {{ slice .list 1 2 }} {{ slice .name 1 }}",
            "[b c] [b] eb",
        ),
        ("{{ print \"a\" 1 2 \"b\" }}", "a1 2b"),
        ("{{ println \"a\" 1 }}", "a 1\n"),
        (
            "{{ eq .n 3 }} {{ eq .name \"x\" \"web\" }} {{ ne .n 4 }}",
            "true true true",
        ),
        (
            "{{ lt 1 2 }} {{ le 2 2 }} {{ gt \"b\" \"a\" }} {{ ge 1.5 2 }}",
            "true true true false",
        ),
        ("{{ eq .nothing nil }}", "true"),
        (
            "{{ html \"<a href='x'>&</a>\" }}",
            "&lt;a href=&#39;x&#39;&gt;&amp;&lt;/a&gt;",
        ),
        ("{{ js \"it's <b>\" }}", "it\\'s \\u003Cb\\u003E"),
        ("{{ urlquery \"a b&c=d/é\" }}", "a+b%26c%3Dd%2F%C3%A9"),
        (
            "{{ and 1 0 2 }} {{ or 0 \"\" \"x\" }} {{ and 1 2 }}",
            "0 x 2",
        ),
        ("{{ or .missing.field \"fallback\" }}", "fallback"),
    ]);
}

#[test]
fn go_printf_verbs() {
    check_go(&[
        (
            "{{ printf \"%s|%d|%v|%t\" \"s\" 42 .list true }}",
            "s|42|[a b c]|true",
        ),
        ("{{ printf \"%q\" \"a\\\"b\\n\" }}", "\"a\\\"b\\n\""),
        (
            "{{ printf \"%5s|%-5s|%.2s\" \"ab\" \"ab\" \"abcd\" }}",
            "   ab|ab   |ab",
        ),
        (
            "{{ printf \"%05d|%+d|%x|%X|%o|%b\" 42 42 255 255 8 5 }}",
            "00042|+42|ff|FF|10|101",
        ),
        (
            "{{ printf \"%f|%.2f|%8.3f|%e|%g\" 1.5 3.14159 2.5 1234.5 0.0001 }}",
            "1.500000|3.14|   2.500|1.234500e+03|0.0001",
        ),
        ("{{ printf \"%x\" \"hi\" }}", "6869"),
        ("{{ printf \"%c|%U\" 65 65 }}", "A|U+0041"),
        ("{{ printf \"%v|%v\" 1e6 123456.0 }}", "1000000|123456"),
        ("{{ printf \"%v\" (float64 1000000) }}", "1e+06"),
        ("{{ printf \"%d%%\" 5 }}", "5%"),
        ("{{ printf \"%d\" }}", "%!d(MISSING)"),
        ("{{ printf \"%d\" \"x\" }}", "%!d(string=x)"),
        ("{{ printf \"x\" 1 }}", "x%!(EXTRA int=1)"),
        (
            "{{ printf \"%T %T %T\" 1 \"s\" .map }}",
            "int string map[string]interface {}",
        ),
    ]);
}

#[test]
fn go_missing_keys_print_no_value_by_default_and_fail_with_missingkey_error() {
    check_go(&[
        ("{{ .missing }}", "<no value>"),
        ("{{ .values.missing }}", "<no value>"),
    ]);
    let data = data();
    assert_eq!(
        render_string("{{ .values.env }}", &data, &GO_STRICT).as_deref(),
        Ok("prod")
    );
    // index and default still see nil, as in Go.
    assert_eq!(
        render_string(
            "{{ index .values \"zzz\" | default \"d\" }}",
            &data,
            &GO_STRICT
        )
        .as_deref(),
        Ok("d")
    );
    check_go_errors(
        &GO_STRICT,
        &[
            ("{{ .missing }}", "map has no entry for key \"missing\""),
            (
                "{{ .values.missing }}",
                "map has no entry for key \"missing\"",
            ),
            ("{{ .nothing.x }}", "nil pointer evaluating"),
        ],
    );
}

#[test]
fn go_parse_errors_are_parse_errors_with_a_reason() {
    let cases = [
        ("{{ if .x }}", "without {{end}}"),
        ("{{ end }}", "unexpected {{end}}"),
        ("{{ else }}", "unexpected {{else}}"),
        ("{{ .x", "unclosed action"),
        ("{{ nosuchfunc 1 }}", "function \"nosuchfunc\" not defined"),
        ("{{ $y }}", "undefined variable \"$y\""),
        ("{{ $y = 1 }}", "undefined variable \"$y\""),
        ("{{ break }}", "outside {{range}}"),
        ("{{ (1 }}", "unclosed left paren"),
        ("{{ \"abc }}", "unterminated quoted string"),
        ("{{ .x | 3 }}", "non executable command in pipeline stage 2"),
        ("{{ }}", "missing value for command"),
        ("{{ env \"HOME\" }}", "function \"env\" not defined"),
        (
            "{{ expandenv \"$HOME\" }}",
            "function \"expandenv\" not defined",
        ),
        (
            "{{ getHostByName \"x\" }}",
            "function \"getHostByName\" not defined",
        ),
        (
            "{{ range .list }}{{ else if .x }}{{ end }}",
            "cannot follow {{range}}",
        ),
        (
            "{{ if true }}{{ define \"x\" }}{{ end }}{{ end }}",
            "inside a control structure",
        ),
    ];
    let data = data();
    for (template, want) in cases {
        match render_string(template, &data, &GO) {
            Err(TemplateError::Parse { message, .. }) => {
                assert!(message.contains(want), "{template:?}: {message}")
            }
            other => panic!("{template:?}: want a parse error with {want:?}, got {other:?}"),
        }
    }
}

#[test]
fn go_execution_errors_say_what_failed() {
    check_go_errors(
        &GO,
        &[
            (
                "{{ .name.first }}",
                "can't evaluate field first in type string",
            ),
            ("{{ index .list 5 }}", "index out of range: 5"),
            ("{{ upper .n }}", "expected string; got int"),
            ("{{ upper .missing }}", "invalid value; expected string"),
            ("{{ template \"nope\" }}", "no such template \"nope\""),
            ("{{ fail \"stop here\" }}", "stop here"),
            ("{{ eq .name 1 }}", "incompatible types for comparison"),
            ("{{ lt .list 1 }}", "comparison"),
            ("{{ range .name }}{{ end }}", "range can't iterate over web"),
            ("{{ .name 1 }}", "can't give argument to non-function"),
            ("{{ nil }}", "nil is not a command"),
            ("{{ div 1 0 }}", "integer divide by zero"),
            ("{{ call .name }}", "not supported"),
        ],
    );
}

#[test]
fn go_bounds_stop_runaway_templates_with_errors() {
    let mut deep_parens = String::from("{{ ");
    deep_parens.push_str(&"(".repeat(500));
    deep_parens.push('1');
    deep_parens.push_str(&")".repeat(500));
    deep_parens.push_str(" }}");
    let deep_ifs = format!(
        "{}x{}",
        "{{ if true }}".repeat(500),
        "{{ end }}".repeat(500)
    );
    let cases = [
        (
            "{{ range until 100000 }}{{ range until 100000 }}{{ end }}{{ end }}",
            "steps of work",
        ),
        (
            "{{ range until 100000 }}0123456789012345678901234567890{{ end }}",
            "output larger than",
        ),
        ("{{ until 100000000 }}", "longer than"),
        ("{{ repeat 100000000 \"x\" }}", "larger than"),
        ("{{ printf \"%999999999d\" 1 }}", "larger than"),
        (
            "{{ define \"r\" }}{{ template \"r\" . }}{{ end }}{{ template \"r\" . }}",
            "nest deeper",
        ),
        (
            "{{ $s := \"xx\" }}{{ range until 64 }}{{ $s = cat $s $s }}{{ end }}",
            "larger than",
        ),
        (
            "{{ $l := list 1 }}{{ range until 64 }}{{ $l = concat $l $l }}{{ end }}",
            "larger than",
        ),
        (
            "{{ $m := dict }}{{ range until 1000 }}{{ $m = dict \"x\" $m }}{{ end }}{{ toJson $m }}",
            "deeper",
        ),
        (
            "{{ $d := dict }}{{ $_ := set $d \"self\" $d }}",
            "cannot contain itself",
        ),
        (deep_parens.as_str(), "nests deeper"),
        (deep_ifs.as_str(), "nests deeper"),
    ];
    let data = data();
    for (template, want) in cases {
        match render_string(template, &data, &GO) {
            Ok(out) => panic!(
                "{:.80}: rendered {} bytes, want an error",
                template,
                out.len()
            ),
            Err(e) => assert!(e.to_string().contains(want), "{template:.80}: {e}"),
        }
    }
}

#[test]
fn go_deep_chain_built_by_set_is_bounded_and_dropped_safely() {
    let template = "{{ $root := dict }}{{ $cur := $root }}{{ range until 50000 }}{{ $n := dict }}\
                    {{ $_ := set $cur \"x\" $n }}{{ $cur = $n }}{{ end }}{{ toJson $root }}";
    let err = render_string(template, &data(), &GO).expect_err("too deep to print");
    assert!(err.to_string().contains("deeper"), "{err}");
}

#[test]
fn template_patch_merges_maps_replaces_lists_and_removes_nulls() {
    let app = json!({
        "metadata": {"name": "web", "labels": {"a": "1", "b": "2"}},
        "spec": {
            "project": "default",
            "source": {"repoURL": "https://git", "path": "apps/web"},
            "syncPolicy": {"syncOptions": ["CreateNamespace=true"]},
        },
    });
    let p = params(json!({"env": "prod", "auto": true, "opts": ["A=1", "B=2"]}));
    let cases: Vec<(&str, Value)> = vec![
        (
            "metadata:\n  labels:\n    env: '{{ .env }}'\n    b: null\n",
            json!({"name": "web", "labels": {"a": "1", "env": "prod"}}),
        ),
        (
            r#"{"metadata": {"name": "{{ .env }}-web"}}"#,
            json!({"name": "prod-web", "labels": {"a": "1", "b": "2"}}),
        ),
    ];
    for (patch, want_metadata) in cases {
        let got = apply_template_patch(app.clone(), patch, &p, &GO).expect(patch);
        assert_eq!(got["metadata"], want_metadata, "{patch}");
        assert_eq!(got["spec"], app["spec"], "{patch}");
    }

    let patch = r#"
spec:
  syncPolicy:
    syncOptions:
    {{- range .opts }}
    - {{ . }}
    {{- end }}
  {{- if .auto }}
    automated:
      prune: true
  {{- end }}
"#;
    let got = apply_template_patch(app.clone(), patch, &p, &GO).expect("patches");
    assert_eq!(
        got["spec"]["syncPolicy"],
        json!({"syncOptions": ["A=1", "B=2"], "automated": {"prune": true}})
    );
    assert_eq!(got["spec"]["source"], app["spec"]["source"]);
}

#[test]
fn template_patch_that_renders_empty_changes_nothing() {
    let app = json!({"metadata": {"name": "web"}});
    let p = params(json!({"auto": false}));
    let patch = "{{ if .auto }}\nspec:\n  x: 1\n{{ end }}\n";
    assert_eq!(apply_template_patch(app.clone(), patch, &p, &GO), Ok(app));
}

#[test]
fn template_patch_errors() {
    let app = json!({"metadata": {"name": "web"}});
    let p = params(json!({}));
    let cases = [
        ("- a\n- b\n", "must be a mapping, not a list"),
        ("just text", "must be a mapping, not a string"),
        ("a: [1,\n", "not valid YAML"),
        ("{\"a\": ", "not valid JSON"),
    ];
    for (patch, want) in cases {
        match apply_template_patch(app.clone(), patch, &p, &GO) {
            Err(TemplateError::Patch(m)) => assert!(m.contains(want), "{patch:?}: {m}"),
            other => panic!("{patch:?}: {other:?}"),
        }
    }
    let err = apply_template_patch(app, "{{ if }}", &p, &GO).expect_err("bad template");
    assert!(matches!(err, TemplateError::Parse { .. }));
}

#[test]
fn template_patch_with_fasttemplate() {
    let app = json!({"metadata": {"name": "web"}});
    let p = params(json!({"path.basename": "guestbook"}));
    let got = apply_template_patch(
        app,
        "metadata:\n  namespace: '{{path.basename}}'\n",
        &p,
        &FAST,
    )
    .expect("patches");
    assert_eq!(
        got,
        json!({"metadata": {"name": "web", "namespace": "guestbook"}})
    );
}

#[test]
fn options_read_missingkey_error_from_go_template_options() {
    let opts = TemplateOptions::new(true, &["missingkey=error".to_string()]);
    assert_eq!(opts, GO_STRICT);
    assert_eq!(TemplateOptions::new(true, &[]), GO);
    assert_eq!(
        TemplateOptions::new(false, &["missingkey=zero".to_string()]),
        FAST
    );
}
