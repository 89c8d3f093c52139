# Loaded by every Python child of the test suite (PYTHONPATH): the same network guard as the suite's.
import importlib.util
import os

_here = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location('_scheduledevents_netguard',
                                               os.path.join(os.path.dirname(_here), 'netguard.py'))
_guard = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_guard)
_guard.install()
