(function () {
  'use strict';
  // Passkey ceremonies (WebAuthn) on the pages that offer them: each form
  // with data-passkey="create" or "get" carries the options tokend made
  // (data-options, JSON with base64url fields); its data-passkey-start
  // button asks the browser, puts the answer (JSON, base64url fields) in the
  // field data-field names, and posts the form. Without JavaScript or
  // WebAuthn such forms stay hidden or say so; everything else works as is.
  var supported = !!(window.PublicKeyCredential && navigator.credentials);

  function bytes(s) {
    s = s.replace(/-/g, '+').replace(/_/g, '/');
    while (s.length % 4) { s += '='; }
    var bin = atob(s), out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) { out[i] = bin.charCodeAt(i); }
    return out.buffer;
  }

  function b64url(buf) {
    var b = new Uint8Array(buf), bin = '';
    for (var i = 0; i < b.length; i++) { bin += String.fromCharCode(b[i]); }
    return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  }

  function encode(cred) {
    var r = cred.response;
    var out = { id: cred.id, rawId: b64url(cred.rawId), type: cred.type, clientExtensionResults: {},
      response: { clientDataJSON: b64url(r.clientDataJSON) } };
    if (cred.authenticatorAttachment) { out.authenticatorAttachment = cred.authenticatorAttachment; }
    if (r.attestationObject) {
      out.response.attestationObject = b64url(r.attestationObject);
      out.response.transports = r.getTransports ? r.getTransports() : [];
    } else {
      out.response.authenticatorData = b64url(r.authenticatorData);
      out.response.signature = b64url(r.signature);
      if (r.userHandle) { out.response.userHandle = b64url(r.userHandle); }
    }
    return JSON.stringify(out);
  }

  function explain(err) {
    switch (err && err.name) {
      case 'NotAllowedError': return 'The passkey request was cancelled or timed out. Try again.';
      case 'InvalidStateError': return 'This device or password manager already has a passkey for your account.';
      case 'SecurityError': return 'Passkeys cannot be used on this address.';
      case 'NotSupportedError': return 'This device cannot make a passkey tokend accepts.';
    }
    return 'The passkey could not be used. Try again.';
  }

  Array.prototype.forEach.call(document.querySelectorAll('form[data-passkey]'), function (form) {
    var status = document.getElementById(form.dataset.status || 'status');
    var start = form.querySelector('[data-passkey-start]');
    function show(message, kind) {
      if (status) { status.textContent = message; status.className = kind || ''; }
    }
    if (!supported) {
      if (!form.hidden) { show('This browser cannot use passkeys.', 'error'); }
      if (start) { start.disabled = true; }
      return;
    }
    form.hidden = false;
    if (!start) { return; }
    start.addEventListener('click', function (event) {
      event.preventDefault();
      var pk = JSON.parse(form.dataset.options).publicKey;
      pk.challenge = bytes(pk.challenge);
      var call;
      if (form.dataset.passkey === 'create') {
        pk.user.id = bytes(pk.user.id);
        (pk.excludeCredentials || []).forEach(function (c) { c.id = bytes(c.id); });
        call = navigator.credentials.create({ publicKey: pk });
      } else {
        (pk.allowCredentials || []).forEach(function (c) { c.id = bytes(c.id); });
        call = navigator.credentials.get({ publicKey: pk });
      }
      start.disabled = true;
      show('Waiting for your passkey…');
      call.then(function (cred) {
        if (!cred) { throw new Error('no credential'); }
        form.elements[form.dataset.field].value = encode(cred);
        show('Checking…');
        form.submit();
      }).catch(function (err) {
        start.disabled = false;
        show(explain(err), 'error');
      });
    });
  });
})();
