//! The one script of the login pages that offer passkeys (the login page's "Log in with a
//! passkey", the offer page's "Create a passkey"): allowed by its SHA-256 in the page's CSP
//! ([`super::html::allow_script`]), it shows the passkey buttons only when the browser has
//! WebAuthn with the JSON helpers, fetches the options, runs the ceremony and posts the result.

/// The passkey script of the login page and the offer page.
pub const SCRIPT: &str = r#"
(function () {
  var P = window.PublicKeyCredential, d = document;
  if (!P || !P.parseRequestOptionsFromJSON || !P.parseCreationOptionsFromJSON) return;
  function fail(e) {
    var m = d.getElementById('passkey-error');
    m.textContent = e.name === 'NotAllowedError' ? m.dataset.cancelled : e.message;
    m.hidden = false;
  }
  function wire(form, button, url, before, ceremony) {
    if (!form) return;
    button.hidden = false;
    button.addEventListener('click', function () {
      before();
      fetch(url, {method: 'POST', body: new URLSearchParams(new FormData(form)), credentials: 'same-origin'})
        .then(function (r) { return r.json().then(function (j) { if (!r.ok) throw new Error(j.message); return j.publicKey || j; }); })
        .then(ceremony)
        .then(function (c) { form.elements.credential.value = JSON.stringify(c.toJSON()); form.submit(); })
        .catch(fail);
    });
  }
  var login = d.getElementById('passkey-form'), email = d.getElementById('email');
  wire(login, d.getElementById('passkey-login'), '/login/passkey/options',
    function () { login.elements.email.value = email ? email.value : ''; },
    function (o) { return navigator.credentials.get({publicKey: P.parseRequestOptionsFromJSON(o)}); });
  wire(d.getElementById('passkey-register'), d.getElementById('passkey-create'), '/login/passkey/register/options',
    function () {},
    function (o) { return navigator.credentials.create({publicKey: P.parseCreationOptionsFromJSON(o)}); });
})();
"#;
