# Sourced by the scripts: project paths and the Dagster instance of the embedded defaults.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${ZIMAGE_VENV:-$ROOT/.venv}"
export ZIMAGE_HOME="${ZIMAGE_HOME:-$ROOT/zimage_data}"
export ZIMAGE_PROJECT_ROOT="$ROOT"
if [ -z "${DAGSTER_HOME:-}" ]; then
  export DAGSTER_HOME="$ZIMAGE_HOME/dagster"
  mkdir -p "$DAGSTER_HOME"
  [ -e "$DAGSTER_HOME/dagster.yaml" ] || ln -s "$ROOT/dagster.yaml" "$DAGSTER_HOME/dagster.yaml"
fi
export PATH="$VENV/bin:$PATH"
