# Sourced by the quick-start scripts. Open MPI refuses to start as root unless told to; the
# quick-start commands are often run as root in containers, so they allow it there with a notice.
# Cluster jobscripts never source this file.
if [ "$(id -u)" -eq 0 ] && [ -z "${OMPI_ALLOW_RUN_AS_ROOT:-}" ]; then
  echo "note: running as root, so OMPI_ALLOW_RUN_AS_ROOT=1 is set for this command" >&2
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
