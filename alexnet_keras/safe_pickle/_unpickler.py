"""The restricted unpickler: Python's own opcode loop, with every opcode that builds bounded.

It subclasses the pure-Python `pickle._Unpickler`, whose memo is a dict (the C
unpickler sizes an array by the largest memo index a file names). On top of
the global allow-list it bounds, before allocating:

- opcodes executed (`max_ops`), so no file keeps it busy for minutes;
- bytes allocated, charged per opcode, per container item, per array and
  per byte decompressed, against a budget (`factor` x the file's size on
  disk + `slack`); the bytes a plain file's strings hold are that size;
- container nesting (`max_depth`): a container is filled only before it is
  put into another one or used as an argument (real pickles do exactly that),
  so each depth is known when it is built and no cycle can form; hashing a
  deep tuple key, or the repr of a deep list, never recurses deeply;
- dict keys and set members to str, bytes, small ints, bools and None, whose
  hashes a file cannot make collide;
- REDUCE, BUILD, OBJ/NEWOBJ, APPEND(S), SETITEM(S) and ADDITEMS to the exact
  targets real files use: numpy's forms (`_numpy`), `OrderedDict`,
  `_codecs.encode` with latin1, and the caller's inert stub classes.
"""

import collections
import pickle
import struct

from alexnet_keras.safe_pickle import _numpy
from alexnet_keras.safe_pickle._source import Refusal, brief

__all__ = ["Unpickler"]

_OP = {
    name: value[0]
    for name, value in vars(pickle).items()
    if name.isupper() and isinstance(value, bytes) and len(value) == 1
}
_KEY_INT = 1 << 60  # larger ints hash modulo 2**61 - 1: a file could make them collide

# Bytes an opcode allocates besides the bytes it reads: the object it makes
# (CPython 3.11 sizes, rounded up) or its memo entry. Items put into a
# container are charged by `_ITEM_COST`. Pushing an existing object (NONE, GET,
# a cached small int) costs a stack slot, bounded by `max_ops`.
_COST = [0] * 256
for _names, _cost in (
    ("BININT BININT2 INT LONG LONG1 LONG4 BINFLOAT FLOAT", 32),
    ("STRING BINSTRING SHORT_BINSTRING UNICODE BINUNICODE SHORT_BINUNICODE BINUNICODE8", 64),
    ("BINBYTES SHORT_BINBYTES BINBYTES8 BYTEARRAY8", 64),
    ("EMPTY_LIST EMPTY_DICT TUPLE1 TUPLE2 TUPLE3 TUPLE LIST DICT MARK", 64),
    ("EMPTY_SET FROZENSET", 216),
    ("PUT BINPUT LONG_BINPUT MEMOIZE", 96),
    ("REDUCE BUILD OBJ INST NEWOBJ NEWOBJ_EX", 128),
):
    for _name in _names.split():
        _COST[_OP[_name]] = _cost
_ITEM_COST = {"list": 8, "dict": 40, "set": 64}  # per item; a dict item is a key or a value


def _latin1_encode(args):
    # Python 3 writes bytes into protocol-2 pickles as _codecs.encode(str, "latin1").
    if type(args) is not tuple or len(args) not in (1, 2) or type(args[0]) is not str:
        raise _numpy.UnsafeForm(f"refuses _codecs.encode{brief(args)}")
    if len(args) == 2 and args[1] not in ("latin1", "latin-1"):
        raise _numpy.UnsafeForm(f"refuses _codecs.encode with encoding {brief(args[1])}")
    return args[0].encode("latin1")


def _pairs(items):
    if len(items) % 2:
        raise IndexError(f"{len(items)} items for key, value pairs")
    return items


def _key(key):
    if type(key) in (str, bytes, bool) or key is None:
        return key
    if type(key) is int and -_KEY_INT < key < _KEY_INT:
        return key
    raise _numpy.UnsafeForm(f"refuses a dict key or set member of type {type(key).__name__}")


class Unpickler(pickle._Unpickler):
    """See the module docstring; `load` returns the object or raises a one-line ValueError."""

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, source, *, globals_, stubs, max_depth, max_dims, max_ops, budget):
        super().__init__(source, encoding="latin1")
        self._source, self._globals, self._stubs = source, globals_, stubs
        self._max_depth, self._max_dims, self._max_ops = max_depth, max_dims, max_ops
        self._budget, self._charged = budget, 0  # budget: (bytes, what it is, for messages)
        self._depth, self._sealed, self._keep = {}, set(), []
        self._pending = {}  # id -> array made by _reconstruct, waiting for its BUILD
        source.line_room = self._room

    # -- budgets ---------------------------------------------------------------
    def _used(self):
        # A decompressed stream's bytes count too: they cost memory the file's size does not bound.
        return self._charged + (0 if self._source.exact else self._source.consumed)

    def _room(self):
        return max(0, self._budget[0] - self._used())

    def _charge(self, nbytes):
        self._charged += nbytes
        if self._used() > self._budget[0]:
            raise Refusal(
                f"would allocate more than {self._budget[0]:,} bytes ({self._budget[1]}); "
                "refused before allocating"
            )

    def load(self):
        self._unframer = pickle._Unframer(self._source.read, self._source.readline)
        self.read, self.readline = self._unframer.read, self._unframer.readline
        self.readinto = self._unframer.readinto
        self.metastack, self.stack = [], []
        self.append = self.stack.append
        self.proto = 0
        read, dispatch, charge, cost = self.read, self.dispatch, self._charge, _COST
        ops = self._max_ops
        try:
            while ops:
                key = read(1)
                if not key:
                    raise EOFError
                ops -= 1
                if cost[key[0]]:
                    charge(cost[key[0]])
                handler = dispatch.get(key[0])
                if handler is None:
                    raise pickle.UnpicklingError(f"no opcode {key!r}")
                handler(self)
            raise Refusal(f"runs more than {self._max_ops:,} pickle opcodes; refused")
        except pickle._Stop as stop:
            if self._pending:
                raise _numpy.UnsafeForm("refuses an array without its state (no BUILD)") from None
            return stop.value

    # -- nesting -----------------------------------------------------------------
    def _new(self, container, depth=1):
        """Track a new container (kept alive, so its id is never reused while loading)."""
        self._depth[id(container)] = depth
        self._keep.append(container)
        return container

    def _adopt(self, parent, children, kind="list"):
        """`parent` now holds `children`: checks it may still be filled, updates its depth."""
        if id(parent) in self._sealed:
            raise Refusal(
                "holds a reference cycle or a reordered pickle: a container is filled after "
                "being used"
            )
        self._charge(_ITEM_COST[kind] * len(children))
        depth = self._depth[id(parent)]
        for child in children:
            if child is parent:
                raise Refusal("holds a reference cycle: a container inside itself")
            d = self._depth.get(id(child))
            if d is not None:
                self._sealed.add(id(child))
                depth = max(depth, d + 1)
        if depth > self._max_depth:
            raise Refusal(f"nests containers deeper than {self._max_depth} levels")
        self._depth[id(parent)] = depth

    def _built(self, container, children, kind="list"):
        self._adopt(self._new(container), children, kind)
        return container

    def _target(self, types, what):
        target = self.stack[-1]
        if type(target) not in types:
            raise _numpy.UnsafeForm(f"refuses {what} on a {type(target).__name__}")
        return target

    # -- containers ------------------------------------------------------------------
    def load_empty_list(self):
        self.append(self._new([]))

    def load_empty_dictionary(self):
        self.append(self._new({}))

    def load_empty_set(self):
        self.append(self._new(set()))

    def load_list(self):
        items = self.pop_mark()
        self.append(self._built(items, items))

    def load_tuple(self):
        items = self.pop_mark()
        self.append(self._built(tuple(items), items) if items else ())

    def _tuple_n(self, n):
        items = self.stack[-n:]
        if len(items) != n:
            raise IndexError("a tuple opcode on a short stack")
        self.stack[-n:] = [self._built(tuple(items), items)]

    def load_tuple1(self):
        self._tuple_n(1)

    def load_tuple2(self):
        self._tuple_n(2)

    def load_tuple3(self):
        self._tuple_n(3)

    def load_dict(self):
        items = _pairs(self.pop_mark())
        d = self._new({})
        self._adopt(d, items, "dict")
        d.update((_key(items[i]), items[i + 1]) for i in range(0, len(items), 2))
        self.append(d)

    def load_frozenset(self):
        items = self.pop_mark()
        self.append(self._built(frozenset(map(_key, items)), items, "set"))

    def load_append(self):
        value = self.stack.pop()
        target = self._target((list,), "APPEND")
        if id(value) in self._depth or id(target) in self._sealed:
            self._adopt(target, [value])
        else:  # a number or a string into a list still being filled: nothing to track
            self._charge(_ITEM_COST["list"])
        target.append(value)

    def load_appends(self):
        items = self.pop_mark()
        target = self._target((list,), "APPENDS")
        self._adopt(target, items)
        target.extend(items)

    def _setitems(self, items):
        target = self._target((dict, collections.OrderedDict), "SETITEM")
        self._adopt(target, _pairs(items), "dict")
        for i in range(0, len(items), 2):
            target[_key(items[i])] = items[i + 1]

    def load_setitem(self):
        items = self.stack[-2:]
        del self.stack[-2:]
        self._setitems(items)

    def load_setitems(self):
        self._setitems(self.pop_mark())

    def load_additems(self):
        items = self.pop_mark()
        target = self._target((set,), "ADDITEMS")
        self._adopt(target, items, "set")
        target.update(map(_key, items))

    # -- calls ---------------------------------------------------------------------------
    def find_class(self, module, name):
        found = self._globals.get((module, name)) or self._stubs.get((module, name))
        if found is None:
            raise _numpy.UnsafeForm(f"refuses the global {module}.{name}")
        return found

    def load_reduce(self):
        args = self.stack.pop()
        func = self.stack[-1]
        if type(args) is not tuple:
            raise _numpy.UnsafeForm("refuses a call whose arguments are not a tuple")
        self.stack[-1] = self._call(func, args)

    def _call(self, func, args):
        name = getattr(func, "name", None)
        self._seal(args)
        if isinstance(func, type) and func in self._stub_classes():
            return self._instance(func, args)
        if name == "_reconstruct":
            array = self._new(_numpy.new_array(self._globals["numpy", "ndarray"], args))
            self._pending[id(array)] = array
            return array
        if name == "dtype":
            return _numpy.new_dtype(args)
        if name == "scalar":
            return _numpy.scalar(args)
        if name == "_frombuffer":
            array, nbytes = _numpy.frombuffer(args, self._max_dims)
            self._charge(nbytes)
            return array
        if name == "encode":
            return _latin1_encode(args)
        if name == "bytes" and args == ():
            return b""
        if name == "OrderedDict":
            return self._ordered_dict(args)
        raise _numpy.UnsafeForm(f"refuses calling {brief(func)}")

    def _seal(self, value):
        if id(value) in self._depth:
            self._sealed.add(id(value))

    def _ordered_dict(self, args):
        pairs = args[0] if len(args) == 1 else () if not args else None
        if isinstance(pairs, dict):
            pairs = list(pairs.items())
        if type(pairs) not in (list, tuple) or not all(
            type(p) in (list, tuple) and len(p) == 2 for p in pairs
        ):
            raise _numpy.UnsafeForm(f"refuses OrderedDict{brief(args)}")
        out = collections.OrderedDict((_key(k), v) for k, v in pairs)
        return self._new(out, self._depth.get(id(args), 1))

    def _stub_classes(self):
        return self._stubs.values()

    def _instance(self, cls, args):
        if args:  # the stand-ins take no arguments: cuda-convnet pickled them as OBJ + BUILD
            raise TypeError(f"{cls.__name__} takes no arguments")
        return self._new(cls.__new__(cls))

    def load_obj(self):
        args = self.pop_mark()
        cls = args.pop(0) if args else None
        self.append(self._checked_instance(cls, tuple(args)))

    def load_inst(self):
        cls = self.find_class(
            self.readline()[:-1].decode("ascii"), self.readline()[:-1].decode("ascii")
        )
        self.append(self._checked_instance(cls, tuple(self.pop_mark())))

    def load_newobj(self):
        args = self.stack.pop()
        cls = self.stack.pop()
        self.append(self._checked_instance(cls, args))

    def load_newobj_ex(self):
        kwargs = self.stack.pop()
        args = self.stack.pop()
        cls = self.stack.pop()
        self.append(self._checked_instance(cls, args + ((kwargs,) if kwargs else ())))

    def _checked_instance(self, cls, args):
        if not (isinstance(cls, type) and cls in self._stub_classes()):
            raise _numpy.UnsafeForm(f"refuses creating an instance of {brief(cls)}")
        return self._instance(cls, args)

    def load_build(self):
        state = self.stack.pop()
        inst = self.stack[-1]
        self._seal(state)
        if id(inst) in self._pending and self._pending[id(inst)] is inst:
            self._adopt(inst, [state])
            self._charge(_numpy.array_state(inst, state, self._max_dims))
            del self._pending[id(inst)]
        elif isinstance(inst, _numpy.DtypeSpec):
            _numpy.dtype_state(inst, state)
        elif type(inst) in self._stub_classes() and not self._depth[id(inst)] > 1:
            self._adopt(inst, [state])  # now deeper than 1: a second BUILD is refused
            type(inst).__setstate__(inst, state)  # the class's, whatever the state holds
        else:
            raise _numpy.UnsafeForm(f"refuses BUILD on a {type(inst).__name__}")

    # -- refused outright, or bounded before allocating ------------------------------------
    def _refuse(self, what):
        raise _numpy.UnsafeForm(f"refuses {what}")

    def load_ext1(self):
        self._refuse("an extension-registry code (EXT1)")

    def load_next_buffer(self):
        self._refuse("out-of-band buffers")

    def persistent_load(self, pid):
        self._refuse("a persistent id")

    def load_bytearray8(self):
        (n,) = struct.unpack("<Q", self.read(8))
        data = self.read(n)  # read checks n before anything is allocated
        self._charge(n)  # the copy
        self.append(bytearray(data))

    def load_frame(self):
        (n,) = struct.unpack("<Q", self.read(8))
        self._charge(n)  # the frame is held while its opcodes run
        self._unframer.load_frame(n)


_OVERRIDES = {
    "EMPTY_LIST": "load_empty_list", "EMPTY_DICT": "load_empty_dictionary",
    "EMPTY_SET": "load_empty_set", "LIST": "load_list", "TUPLE": "load_tuple",
    "TUPLE1": "load_tuple1", "TUPLE2": "load_tuple2", "TUPLE3": "load_tuple3", "DICT": "load_dict",
    "FROZENSET": "load_frozenset", "APPEND": "load_append", "APPENDS": "load_appends",
    "SETITEM": "load_setitem", "SETITEMS": "load_setitems", "ADDITEMS": "load_additems",
    "REDUCE": "load_reduce", "OBJ": "load_obj", "INST": "load_inst", "NEWOBJ": "load_newobj",
    "NEWOBJ_EX": "load_newobj_ex", "BUILD": "load_build", "EXT1": "load_ext1",
    "EXT2": "load_ext1", "EXT4": "load_ext1", "NEXT_BUFFER": "load_next_buffer",
    "READONLY_BUFFER": "load_next_buffer", "BYTEARRAY8": "load_bytearray8", "FRAME": "load_frame",
}  # fmt: skip
for _name, _method in _OVERRIDES.items():
    Unpickler.dispatch[_OP[_name]] = getattr(Unpickler, _method)
