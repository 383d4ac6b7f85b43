"""A dropped Rust, npm or Go project's own dependencies, fetched OUTSIDE the sandbox by NOA's
own tools (which execute nothing from the project), then exposed READ-ONLY to its sandboxed
tests, builds and checks, which never have network.

* :mod:`.layout` - the cache (``$NOA_DEPS_CACHE``, else ``NOA_HOME/deps``) and the result type;
* :mod:`.cargo` - ``cargo vendor`` into a cache keyed by ``Cargo.lock`` (``cargo
  generate-lockfile`` first when the crate has none), used inside with ``--offline --frozen``;
* :mod:`.npm` - ``npm ci --ignore-scripts`` (``npm install --ignore-scripts`` without a lock)
  into the work copy's ``node_modules``;
* :mod:`.golang` - vendored modules, or a module cache filled with ``go mod download``
  (``GOPROXY`` from the environment), used inside with ``GOPROXY=off``;
* :mod:`.native` - the one call the test runner makes for a cargo / go / npm command.

When the dependencies cannot be had (no network, an unknown crate, no proxy), the result is
``unknown`` with the tool's own message: the suite is then not run, never reported passed.
"""
