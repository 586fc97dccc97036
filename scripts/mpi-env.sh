# Sourced by the quick-start scripts. Open MPI rejects running as root unless two variables allow
# it. The quick-start commands often run as root in containers, so they set both there with a notice.
# Cluster jobscripts never source this file.
if [ "$(id -u)" -eq 0 ] && [ -z "${OMPI_ALLOW_RUN_AS_ROOT:-}" ]; then
  echo "note: running as root, so OMPI_ALLOW_RUN_AS_ROOT and its _CONFIRM variable are set to 1" >&2
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
